"""Token classification (extraction): an IOB2 tag per word from AutoModelForTokenClassification, trained with CE.

Words are split into sub-tokens by the model's fast tokenizer (`is_split_into_words`); the first sub-token of a word
carries its tag and the others are -100 (ignored), or, with `token_classification.label_all_subtokens`, every
sub-token carries it (continuations of B-X as I-X). A word is predicted from its first sub-token either way.
Raw text (serving, `extract`) is split into words by `data.tokens.split_words`, the same rule that converts
character spans for training, so entities come back with character offsets into the input. Predicted tags are read
as conlleval does (an I-X that starts an entity opens one), and evaluation scores exactly those entities.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification

from tunesmith.config import Config
from tunesmith.contracts import TrainerParts
from tunesmith.encoders import embed, to_inference_device
from tunesmith.families.token_classification.rows import OUTSIDE, TAGS, TOKENS, split_words

__all__ = ["build_model", "decode", "embed", "extract", "load_tokenizer", "predict_words", "repair", "trainer_parts"]
IGNORE = -100  # the label CrossEntropyLoss skips


def load_tokenizer(model_path: str, *, revision: str | None = None, trust_remote_code: bool = False):
    """The base's fast tokenizer: word alignment (`word_ids`) needs one."""
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision, trust_remote_code=trust_remote_code)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{model_path}: token-classification needs a fast (Rust) tokenizer to map sub-tokens to "
                         "words; use a model that ships tokenizer.json")
    return tokenizer


def build_model(model_path: str, labels: Sequence[str] = (), *, revision: str | None = None,
                trust_remote_code: bool = False):
    """The base with a fresh token head sized for `labels` (id2label / label2id in its config, for pipeline())."""
    if not labels:
        raise ValueError("token-classification needs its tag list (O, B-X, I-X, ...) to size the head")
    return AutoModelForTokenClassification.from_pretrained(
        model_path, revision=revision, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, trust_remote_code=trust_remote_code,
        ignore_mismatched_sizes=True,  # a fine-tuned tagger re-headed for a new tag set
    )


def align_labels(word_ids: Sequence[int | None], tag_ids: Sequence[int], continuation: Sequence[int],
                 all_subtokens: bool) -> list[int]:
    """A label per sub-token: the word's tag on its first sub-token; -100 on the others (or I-X with all_subtokens)
    and on special tokens."""
    out, previous = [], None
    for w in word_ids:
        if w is None:
            out.append(IGNORE)
        elif w != previous:
            out.append(tag_ids[w])
        else:
            out.append(continuation[tag_ids[w]] if all_subtokens else IGNORE)
        previous = w
    return out


def encode_words(tokenizer, words: Sequence[Sequence[str]], labels: Sequence[str], tags, max_length: int,
                 all_subtokens: bool) -> Dataset:
    """input_ids, attention_mask, aligned labels and length per sentence (truncated words get no label)."""
    ids = {t: i for i, t in enumerate(labels)}
    continuation = [ids.get("I-" + t[2:], i) if t.startswith("B-") else i for i, t in enumerate(labels)]
    enc = tokenizer([list(w) for w in words], is_split_into_words=True, truncation=True, max_length=max_length)
    enc = dict(enc) | {"labels": [align_labels(enc.word_ids(i), [ids[t] for t in sent], continuation, all_subtokens)
                                  for i, sent in enumerate(tags)]}
    enc["length"] = [len(x) for x in enc["input_ids"]]
    return Dataset.from_dict(enc)


def load_teacher(teacher_dir, tokenizer, labels: Sequence[str], cfg: Config):
    """The distillation teacher: a tagger with the student's vocabulary and tag set, its head's rows put in the
    student's tag order (per-token KD compares the two distributions tag by tag)."""
    from tunesmith.training.distill import check_same_vocabulary
    from tunesmith.training.trainer import TrainingError

    check_same_vocabulary(teacher_dir, tokenizer, cfg)
    teacher = AutoModelForTokenClassification.from_pretrained(str(teacher_dir), use_safetensors=True,
                                                              trust_remote_code=cfg.model.trust_remote_code)
    have = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    if set(have) != set(labels):
        raise TrainingError(f"method.distill.teacher: the teacher tags {sorted(have)}, the data {list(labels)}; "
                            "distill from a tagger trained on the same tag set")
    if have != list(labels):
        head = getattr(teacher, "classifier", None)
        if not isinstance(head, torch.nn.Linear):
            raise TrainingError("method.distill.teacher: its tags are in another order and its head is not one "
                                "linear layer to reorder")
        order = torch.tensor([have.index(t) for t in labels])
        with torch.no_grad():
            head.weight.copy_(head.weight[order])
            if head.bias is not None:
                head.bias.copy_(head.bias[order])
    return teacher


def trainer_parts(cfg: Config, bundle, tokenizer, model=None, teacher_dir=None) -> TrainerParts:
    """Aligned labels, padding by DataCollatorForTokenClassification, entity F1 on eval for the best checkpoint;
    with `method.kind: distill` the teacher runs beside the student on each batch (per-token KD)."""
    from tunesmith.config import MethodKind
    from tunesmith.families.token_classification.metrics import entity_counts, entity_scores, scalar

    labels, max_len = list(bundle.labels), cfg.model.max_length
    all_sub = cfg.token_classification.label_all_subtokens
    train_ds = encode_words(tokenizer, bundle.train[TOKENS], labels, bundle.train[TAGS], max_len, all_sub)
    # eval labels sit on first sub-tokens only, so compute_metrics reads one prediction per word
    eval_ds = (encode_words(tokenizer, bundle.eval[TOKENS], labels, bundle.eval[TAGS], max_len, False)
               if len(bundle.eval) else None)
    types = list(dict.fromkeys(t[2:] for t in labels if t != OUTSIDE))

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        pred_ids, gold_ids = np.asarray(logits).argmax(-1), np.asarray(eval_pred.label_ids)
        gold, pred = [], []
        for p, g in zip(pred_ids, gold_ids, strict=True):
            keep = g != IGNORE
            gold.append([labels[i] for i in g[keep]])
            pred.append(repair([labels[i] for i in p[keep]]))
        scores = scalar(entity_scores(entity_counts(gold, pred, types), types))
        return {k: scores[k] for k in ("f1", "macro_f1", "precision", "recall")}

    extra = {}
    if MethodKind(cfg.method.kind) is MethodKind.DISTILL:
        from tunesmith.training.distill import DistillTrainer

        teacher = load_teacher(teacher_dir, tokenizer, labels, cfg) if teacher_dir is not None else None
        extra = {"trainer_cls": DistillTrainer,
                 "trainer_kwargs": {"distill": cfg.method.distill, "teacher": teacher, "shift": False}}
    return TrainerParts(train_ds, eval_ds, data_collator=DataCollatorForTokenClassification(tokenizer),
                        compute_metrics=compute_metrics, **extra)


# --- inference ---------------------------------------------------------------------------------------------


def repair(tags: Sequence[str]) -> list[str]:
    """Predicted tags read as conlleval does: an I-X that does not continue an X entity starts one (B-X)."""
    out: list[str] = []
    for tag in tags:
        if tag.startswith("I-") and (not out or out[-1][2:] != tag[2:] or out[-1] == OUTSIDE):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


@torch.inference_mode()
def predict_words(model, tokenizer, words: Sequence[Sequence[str]], *, max_length: int = 128,
                  batch_size: int = 64) -> tuple[list[list[str]], list[np.ndarray], int]:
    """Per sentence: a tag per word (IOB2, repaired), that tag's probability per word, and how many sentences
    were cut by max_length (their words past the cut are tagged O with probability nan)."""
    model.eval()
    device = to_inference_device(model)
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    words = [list(w) for w in words]
    tags: list[list[str]] = [[] for _ in words]
    probs: list[np.ndarray] = [np.zeros(0) for _ in words]
    truncated = 0
    order = np.argsort([sum(len(w) for w in s) for s in words], kind="stable")
    order = order[[len(words[i]) > 0 for i in order]] if len(order) else order  # a text without words has no tags
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([words[i] for i in idx], is_split_into_words=True, truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt")
        p = torch.softmax(model(**{k: v.to(device) for k, v in enc.items()}).logits.float(), -1).cpu().numpy()
        for row, i in enumerate(idx):
            first: dict[int, int] = {}
            for pos, w in enumerate(enc.word_ids(row)):
                if w is not None and w not in first:
                    first[w] = pos
            n = len(words[i])
            truncated += len(first) < n
            best = [int(p[row, first[w]].argmax()) if w in first else None for w in range(n)]
            tags[i] = repair([id2label[b] if b is not None else OUTSIDE for b in best])
            probs[i] = np.array([p[row, first[w], b] if b is not None else np.nan for w, b in enumerate(best)])
    return tags, probs, truncated


def decode(tags: Sequence[str], probs: Sequence[float]) -> list[tuple[int, int, str, float]]:
    """Entities of repaired IOB2 tags: (first word, last word exclusive, type, mean word probability)."""
    out, start = [], None
    for i, tag in enumerate([*tags, OUTSIDE]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == tags[start][2:]):
            out.append((start, i, tags[start][2:], float(np.nanmean(probs[start:i]))))
            start = None
        if tag.startswith("B-"):
            start = i
    return out


def extract(model, tokenizer, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64) -> list[list[dict]]:
    """Entities per raw text: {start, end, label, score, text} with character offsets into that text."""
    offsets = [split_words(t) for t in texts]
    tags, probs, _ = predict_words(model, tokenizer, [[t[s:e] for s, e in o] for t, o in zip(texts, offsets, strict=True)],
                                   max_length=max_length, batch_size=batch_size)
    out = []
    for text, off, tag, prob in zip(texts, offsets, tags, probs, strict=True):
        ents = []
        for first, last, kind, score in decode(tag, prob):
            start, end = off[first][0], off[last - 1][1]
            ents.append({"start": start, "end": end, "label": kind, "score": round(score, 6), "text": text[start:end]})
        out.append(ents)
    return out

"""Knowledge distillation (`method.kind: distill`): a student learns from a fine-tuned teacher's soft labels.

    loss = kd_weight * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + hard_weight * CE(student, labels)

Classification: the teacher runs once over the train rows (plus the teacher-labelled `method.distill.unlabeled`
rows) before the student trains; its logits ride along in the dataset, so the teacher is not in memory while the
student trains. Causal-lm: token-level KD on the loss tokens, the teacher run beside the student under no_grad on
the same (packed) inputs, so both see identical positions. Training stays the transformers Trainer: only
`compute_loss` changes (Hinton et al. 2015; the T^2 keeps the soft term's gradients on the hard term's scale).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.config import Config, DistillConfig, SyntheticLabels
from tunesmith.training.methods import MethodError, encoder_layers
from tunesmith.training.trainer import TrainingError, TunesmithTrainer

DISTILL_FILE = "distill.json"  # run_dir: teacher, synthetic rows, loss weights (lineage and the report read it)


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T) per row (last dim = classes or vocabulary)."""
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1) * (t * t)


def classification_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                           hard_mask: torch.Tensor | None, d: DistillConfig) -> torch.Tensor:
    """Mean over the batch of the KD term, plus the CE over the rows whose label is real (hard_mask 1)."""
    loss = d.kd_weight * soft_kl(student_logits, teacher_logits, d.temperature).mean() if d.kd_weight else 0.0
    if d.hard_weight:
        ce = F.cross_entropy(student_logits.float(), labels, reduction="none")
        mask = torch.ones_like(ce) if hard_mask is None else hard_mask.to(ce.dtype)
        loss = loss + d.hard_weight * (ce * mask).sum() / mask.sum().clamp(min=1)
    return loss


def regression_kd_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, labels: torch.Tensor,
                       hard_mask: torch.Tensor | None, d: DistillConfig) -> torch.Tensor:
    """Mean squared distance to the teacher's (standardized) prediction, plus the MSE to the rows' real targets
    (hard_mask 1); a regressor has no distribution to soften, so the temperature does not apply."""
    student = student_out.float().reshape(-1)
    loss = d.kd_weight * F.mse_loss(student, teacher_out.float().reshape(-1)) if d.kd_weight else 0.0
    if d.hard_weight:
        se = (student - labels.float().reshape(-1)) ** 2
        mask = torch.ones_like(se) if hard_mask is None else hard_mask.to(se.dtype)
        loss = loss + d.hard_weight * (se * mask).sum() / mask.sum().clamp(min=1)
    return loss


def token_kd_sum(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                 temperature: float, *, shift: bool = True) -> torch.Tensor:
    """Sum of T^2 * KL over the positions that carry a loss label: with `shift` (a causal LM) logits at i predict
    labels at i + 1; without (token classification) logits and labels are aligned."""
    if not shift:
        mask = labels != -100
        return soft_kl(student_logits[mask], teacher_logits[mask], temperature).sum()
    mask = labels[..., 1:] != -100
    return soft_kl(student_logits[..., :-1, :][mask], teacher_logits[..., :-1, :][mask], temperature).sum()


class DistillTrainer(TunesmithTrainer):
    """The tunesmith Trainer with the KD loss; the teacher is either precomputed outputs (classification's logits,
    regression's standardized values, in the `teacher_logits` column, scored by `kd_loss`) or a model run on the
    same batch (causal-lm: next-token KD, `shift`; token classification: per-token KD on the labelled tokens)."""

    def __init__(self, *args, distill: DistillConfig, teacher: nn.Module | None = None,
                 kd_loss=classification_kd_loss, shift: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.distill = distill
        self.teacher = teacher.eval().requires_grad_(False) if teacher is not None else None
        self.kd_loss, self.shift = kd_loss, shift

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        for column in ("teacher_logits", "hard_mask"):  # kept by remove_unused_columns, popped in compute_loss
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher_logits = inputs.pop("teacher_logits", None)
        hard_mask = inputs.pop("hard_mask", None)
        if self.teacher is not None and model.training:
            return self._token_kd(model, inputs, return_outputs, num_items_in_batch)
        if teacher_logits is None or not model.training:  # evaluation: the plain loss of the human labels
            self.loss_is_scaled_for_ga = None
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = self.kd_loss(outputs.logits, teacher_logits.to(outputs.logits.device), labels, hard_mask, self.distill)
        self.loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides by the accumulation steps
        return (loss, outputs) if return_outputs else loss

    def _token_kd(self, model, inputs, return_outputs, num_items_in_batch):
        if not self.shift:
            return self._tag_kd(model, inputs, return_outputs)
        d = self.distill
        labels = inputs["labels"]
        kwargs = {"num_items_in_batch": num_items_in_batch} if num_items_in_batch is not None else {}
        outputs = model(**inputs, **kwargs)  # the model's own CE over the accumulated batch's loss tokens
        teacher_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        with torch.no_grad():
            teacher_logits = self.teacher(**teacher_inputs).logits
        tokens = num_items_in_batch if num_items_in_batch is not None else (labels[..., 1:] != -100).sum()
        kd = token_kd_sum(outputs.logits, teacher_logits, labels, d.temperature) / torch.as_tensor(tokens).clamp(min=1)
        loss = d.kd_weight * kd.to(outputs.loss.dtype) + d.hard_weight * outputs.loss
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        return (loss, outputs) if return_outputs else loss

    def _tag_kd(self, model, inputs, return_outputs):
        """Token classification: the mean T^2 * KL over the labelled tokens, plus the model's own CE."""
        d = self.distill
        labels = inputs["labels"]
        outputs = model(**inputs)
        with torch.no_grad():
            teacher_logits = self.teacher(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        tokens = (labels != -100).sum().clamp(min=1)
        kd = token_kd_sum(outputs.logits, teacher_logits, labels, d.temperature, shift=False) / tokens
        loss = d.kd_weight * kd.to(outputs.loss.dtype) + d.hard_weight * outputs.loss
        self.loss_is_scaled_for_ga = False  # per-batch means: the Trainer divides by the accumulation steps
        return (loss, outputs) if return_outputs else loss


# --- the teacher -----------------------------------------------------------------------------------------------


def resolve_teacher(ref: str, cfg: Config) -> Path:
    """A teacher model dir from a path, or a registered NAME, NAME:VERSION or NAME@alias (default: champion)."""
    from tunesmith.hub import refuse_pickle_weights

    path = Path(ref).expanduser()
    if path.is_dir():
        refuse_pickle_weights(path, key="method.distill.teacher", allow=cfg.model.allow_pickle_weights)
        return path.resolve()
    from tunesmith.registry import model_dir_for

    name, version = ref, "champion"
    if "@" in ref:
        name, version = ref.split("@", 1)
    elif ":" in ref:
        name, version = ref.rsplit(":", 1)
    found = model_dir_for(name, version, registry=cfg.registry)
    if found is None:
        raise TrainingError(f"method.distill.teacher: {ref!r} is neither a model dir nor a registered model version "
                            f"({name}@{version} not found); train the teacher first (tunesmith run) or give its "
                            "model dir")
    return Path(found)


def teacher_logits(teacher_dir: Path, texts: list[str], labels: list[str], cfg: Config) -> np.ndarray:
    """The teacher's logits for `texts`, columns in the data's label order (checked against the teacher's labels)."""
    from tunesmith.evaluation.scoring import frame_logits, label_order, load_classifier, model_labels

    model, tokenizer = load_classifier(teacher_dir, trust_remote_code=cfg.model.trust_remote_code)
    order = label_order(model, labels)
    if order is None:
        raise TrainingError(f"method.distill.teacher: the teacher's labels {model_labels(model)[:10]} are not the "
                            f"data's labels {labels[:10]}; distill from a teacher trained on the same label set")
    return frame_logits(model, tokenizer, pd.DataFrame({"text": texts}), cfg, order)


def check_same_vocabulary(teacher_dir: Path, tokenizer, cfg: Config) -> None:
    """KD that compares per-token distributions needs the teacher to tokenize as the student does."""
    from transformers import AutoTokenizer

    teacher_tok = AutoTokenizer.from_pretrained(str(teacher_dir), trust_remote_code=cfg.model.trust_remote_code)
    if teacher_tok.get_vocab() != tokenizer.get_vocab():
        raise TrainingError("method.distill.teacher: the teacher's tokenizer differs from the student's "
                            f"({len(teacher_tok)} vs {len(tokenizer)} tokens); token-level KD needs one vocabulary, "
                            "so distill into a student of the same model family")


def load_teacher_lm(teacher_dir: Path, student, tokenizer, cfg: Config):
    """The causal-LM teacher, checked to share the student's vocabulary (token-level KD compares distributions)."""
    from transformers import AutoModelForCausalLM

    check_same_vocabulary(teacher_dir, tokenizer, cfg)
    teacher = AutoModelForCausalLM.from_pretrained(str(teacher_dir), use_safetensors=True,
                                                   trust_remote_code=cfg.model.trust_remote_code)
    if teacher.config.vocab_size != student.config.vocab_size:
        raise TrainingError(f"method.distill.teacher: vocab_size {teacher.config.vocab_size} != the student's "
                            f"{student.config.vocab_size}; token-level KD needs one vocabulary")
    teacher.config.use_cache = False
    return teacher


# --- the student -----------------------------------------------------------------------------------------------


def shrink_layers(model: nn.Module, keep: int) -> nn.Module:
    """Keep `keep` evenly spaced transformer layers (first and last included), DistilBERT-style, in place."""
    layers = encoder_layers(model)
    total = len(layers)
    if keep > total:
        raise MethodError(f"method.distill.student_layers: {keep} is more than the {total} layers of model.base")
    if keep == total:
        return model
    index = sorted({int(round(i)) for i in np.linspace(0, total - 1, keep)})
    kept = [layers[i] for i in index]
    for new_i, layer in enumerate(kept):  # the KV cache indexes layers by position
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_i
    layers._modules.clear()
    for new_i, layer in enumerate(kept):
        layers.add_module(str(new_i), layer)
    model.config.num_hidden_layers = len(kept)
    if isinstance(getattr(model.config, "layer_types", None), list):
        model.config.layer_types = [model.config.layer_types[i] for i in index]
    return model


# --- the data --------------------------------------------------------------------------------------------------


@dataclass
class DistillData:
    frame: pd.DataFrame  # train rows + synthetic rows, with `teacher_logits` and `hard_mask`
    synthetic_rows: int
    synthetic_skipped: dict[str, int]


def read_unlabeled(path: str | Path, text_column: str) -> list[str]:
    """Texts of a .txt (one per line), .csv or .jsonl file (compressed too); the column is data.text_column."""
    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"method.distill.unlabeled: {path} does not exist (relative paths resolve against the "
                            "config file's folder)")
    if p.suffix == ".txt":
        return [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    frame = pd.read_json(p, lines=True) if ".jsonl" in p.suffixes or ".json" in p.suffixes else pd.read_csv(p)
    if text_column not in frame.columns:
        raise TrainingError(f"method.distill.unlabeled: {path} has no {text_column!r} column (data.text_column); "
                            f"columns: {list(frame.columns)[:10]}")
    return frame[text_column].fillna("").astype(str).str.strip().tolist()


def unlabeled_texts(cfg: Config, known: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    """The texts of `method.distill.unlabeled` the teacher may label: each once, none empty and none already in a
    split (`known`; case/space-normalized), with how many were skipped for each reason."""
    skipped = {"empty": 0, "in_a_split": 0, "repeated": 0}
    texts: list[str] = []
    if not cfg.method.distill.unlabeled:
        return texts, skipped
    held, seen = {_norm(t) for t in known}, set()
    for text in read_unlabeled(cfg.resolve_path(cfg.method.distill.unlabeled), cfg.data.text_column):
        key = _norm(text)
        reason = "empty" if not key else "in_a_split" if key in held else "repeated" if key in seen else None
        if reason:
            skipped[reason] += 1
            continue
        seen.add(key)
        texts.append(text)
    return texts, skipped


def distill_data(cfg: Config, bundle, teacher_dir: Path, *, teach=None, target: str = "label",
                 synthetic_target=None) -> DistillData:
    """The student's train rows: every human-labelled row with the teacher's outputs, plus the unlabeled rows the
    teacher labels. An unlabeled text that is empty or already in any split (exact, case/space-normalized) is
    skipped and counted, so synthetic rows never leak eval/test texts into training.

    `teach(texts) -> array (rows x outputs)`: the teacher's outputs (default: a classifier's logits in the data's
    label order); `synthetic_target(output) -> value`: a teacher-labelled row's `target` column (default: the
    label of the largest logit)."""
    d = cfg.method.distill
    train = bundle.train.reset_index(drop=True).copy()
    train["hard_mask"] = 1.0
    texts, skipped = unlabeled_texts(cfg, [t for f in (bundle.train, bundle.eval, bundle.test)
                                           for t in f["text"].astype(str)])
    teach = teach or (lambda batch: teacher_logits(teacher_dir, batch, list(bundle.labels), cfg))
    synthetic_target = synthetic_target or (lambda out: bundle.labels[int(np.argmax(out))])
    logits = np.asarray(teach([*train["text"].astype(str), *texts]))
    train["teacher_logits"] = list(logits[: len(train)])
    if texts:
        synth = pd.DataFrame({"text": texts, target: [synthetic_target(out) for out in logits[len(train):]]})
        synth["hard_mask"] = 1.0 if d.synthetic is SyntheticLabels.HARD else 0.0
        synth["teacher_logits"] = list(logits[len(train):])
        train = pd.concat([train, synth], ignore_index=True)
    return DistillData(train, len(texts), skipped)


def add_teacher_columns(dataset, frame: pd.DataFrame):
    """The tokenized train split plus the teacher's logits and the hard-label mask, row for row."""
    dataset = dataset.add_column("teacher_logits", [list(map(float, x)) for x in frame["teacher_logits"]])
    return dataset.add_column("hard_mask", frame["hard_mask"].astype(float).tolist())


def write_distill_record(run_dir: Path, cfg: Config, teacher_dir: Path, data: DistillData | None) -> dict:
    """run_dir/distill.json: what the student learned from (lineage tags and the report read it)."""
    from tunesmith.io import atomic_write_json

    d = cfg.method.distill
    record = {
        "teacher": d.teacher, "teacher_dir": str(teacher_dir), "temperature": d.temperature,
        "kd_weight": d.kd_weight, "hard_weight": d.hard_weight, "student_method": d.student_method.value,
        "student_layers": d.student_layers, "synthetic_rows": data.synthetic_rows if data else 0,
        "synthetic_skipped": data.synthetic_skipped if data else {}, "synthetic_mode": d.synthetic.value,
        "label_source": f"teacher:{d.teacher}" if data and data.synthetic_rows else "human",
        "task": cfg.task,
    }
    atomic_write_json(Path(run_dir) / DISTILL_FILE, record)
    return record


def read_distill_record(run_dir: Path) -> dict | None:
    path = Path(run_dir) / DISTILL_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def lineage_tags(record: dict) -> dict[str, str]:
    """Registry tags: the teacher and how many training rows carry synthetic (teacher) labels."""
    return {"distill.teacher": str(record["teacher"]), "distill.synthetic_rows": str(record["synthetic_rows"]),
            "distill.label_source": record["label_source"], "distill.synthetic_mode": record["synthetic_mode"],
            "distill.temperature": str(record["temperature"]),
            "distill.student_layers": str(record["student_layers"] or "all")}


def needs_teacher(cfg: Config) -> bool:
    """False for the student-without-KD comparison run (kd_weight 0, no synthetic rows)."""
    d = cfg.method.distill
    return bool(d.kd_weight or d.unlabeled)


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())

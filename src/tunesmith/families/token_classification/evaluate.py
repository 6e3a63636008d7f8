"""Evaluate an extractor on the test split: entity P/R/F1 against a word probe on the frozen base (and the champion).

    report = evaluate_token_classification(cfg, bundle, run_dir / "model", champion_dir=champion)

The base model has no token head, so "base" is the best it does with one fitted on top and nothing else trained:
a logistic-regression tag classifier on the frozen base encoder's first-sub-token vector of each word (C chosen on
the eval split's entity F1), the token counterpart of the classification linear probe. Its tags are read like the
tuned model's (`repair`), and both are scored by `token_metrics` (seqeval strict IOB2). Uplift is tuned - probe per
metric, with a paired bootstrap over test sentences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.contracts import COMPARED, ReportBase, flat_family_metrics
from tunesmith.evaluation.champion import MIN_CHAMPION_ROWS, champion_on_unseen, note_unseen_share
from tunesmith.evaluation.errors import EvalError
from tunesmith.families.token_classification.metrics import (
    deltas,
    entity_counts,
    entity_scores,
    entity_sets,
    scalar,
)
from tunesmith.families.token_classification.rows import OUTSIDE, TAGS, TOKENS

C_VALUES = (0.1, 1.0, 10.0)  # probe strengths, chosen on the eval split
MAX_PROBE_WORDS = 20000  # a seeded sample of train words fits the probe (time, memory)
EXAMPLES = 8  # test sentences where the tuned model's entities differ from the gold ones


@dataclass(kw_only=True)
class TokenEvalReport(ReportBase):
    vs_champion_rows: int | None = None
    baseline_probe: dict = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    truncated_sentences: int = 0

    def flat_metrics(self) -> dict[str, float]:
        """The namespace gates read: f1, macro_f1, baseline.f1, uplift.f1, uplift_ci_low.f1, vs_champion.f1, ..."""
        return flat_family_metrics(scalar(self.tuned), scalar(self.baseline),
                                   scalar(self.champion) if self.champion else None, self.uplift, self.vs_champion)

    def html_sections(self) -> list[tuple[str, str]]:
        from tunesmith.families.token_classification.report import token_sections

        return token_sections(self)


def _types(labels) -> list[str]:
    return list(dict.fromkeys(t[2:] for t in labels if t != OUTSIDE))


def _load(model_dir, cfg, key: str):
    from transformers import AutoModelForTokenClassification

    from tunesmith.families.token_classification.model import load_tokenizer
    from tunesmith.hub import loading

    with loading(str(model_dir), key=key):
        tokenizer = load_tokenizer(str(model_dir), trust_remote_code=cfg.model.trust_remote_code)
        model = AutoModelForTokenClassification.from_pretrained(str(model_dir),
                                                                trust_remote_code=cfg.model.trust_remote_code)
    return model, tokenizer


def _tags(model_dir, cfg, key: str, words, labels) -> tuple[list[list[str]], int]:
    from tunesmith.families.token_classification.model import predict_words

    model, tokenizer = _load(model_dir, cfg, key)
    found = set(model.config.id2label.values())
    if found != set(labels):
        raise EvalError(f"{model_dir}: the model tags {sorted(found)}, but the data has tags {list(labels)}",
                        hint="evaluate it with the config (data and data.labels) it was trained with")
    tags, _, truncated = predict_words(model, tokenizer, words, max_length=cfg.model.max_length,
                                       batch_size=cfg.training.eval_batch_size)
    return tags, truncated


def word_features(cfg, sentences) -> list[np.ndarray]:
    """Per sentence, the frozen base encoder's vector of each word's first sub-token (rows of nan past truncation)."""
    import torch
    from transformers import AutoModel

    from tunesmith.families.token_classification.model import load_tokenizer
    from tunesmith.hub import loading, resolve_model

    resolved = resolve_model(cfg.model.base, cfg.model.revision)
    remote = cfg.model.trust_remote_code
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):
        tokenizer = load_tokenizer(resolved.path, revision=resolved.revision, trust_remote_code=remote)
        model = AutoModel.from_pretrained(resolved.path, revision=resolved.revision, trust_remote_code=remote).eval()
    out: list[np.ndarray] = []
    batch = cfg.training.eval_batch_size
    with torch.inference_mode():
        for start in range(0, len(sentences), batch):
            chunk = [list(s) for s in sentences[start:start + batch]]
            enc = tokenizer(chunk, is_split_into_words=True, truncation=True, max_length=cfg.model.max_length,
                            padding=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state.float().numpy()
            for row, words in enumerate(chunk):
                vec = np.full((len(words), hidden.shape[-1]), np.nan, dtype=np.float32)
                seen = set()
                for pos, w in enumerate(enc.word_ids(row)):
                    if w is not None and w not in seen:
                        seen.add(w)
                        vec[w] = hidden[row, pos]
                out.append(vec)
    return out


def word_probe(cfg, bundle, types: list[str]) -> tuple[list[list[str]], dict]:
    """Test tags of a logistic-regression tagger on frozen first-sub-token vectors (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from tunesmith.families.token_classification.model import repair

    splits = [bundle.train, bundle.eval, bundle.test]
    feats = word_features(cfg, [w for f in splits for w in f[TOKENS]])
    bounds = np.cumsum([0] + [len(f) for f in splits])
    parts = [feats[bounds[i]:bounds[i + 1]] for i in range(3)]
    x = np.concatenate(parts[0]) if parts[0] else np.zeros((0, 1))
    y = np.array([t for tags in bundle.train[TAGS] for t in tags])
    keep = ~np.isnan(x).any(axis=1)
    x, y = x[keep], y[keep]
    if len(y) > MAX_PROBE_WORDS:
        pick = np.random.default_rng(cfg.seed).choice(len(y), MAX_PROBE_WORDS, replace=False)
        x, y = x[pick], y[pick]
    scaler = StandardScaler().fit(x)

    def tag(clf, sentences) -> list[list[str]]:
        out = []
        for vec in sentences:
            ok = ~np.isnan(vec).any(axis=1)
            pred = np.full(len(vec), OUTSIDE, dtype=object)
            if ok.any():
                pred[ok] = clf.predict(scaler.transform(vec[ok]))
            out.append(repair(list(pred)))
        return out

    best = None
    eval_gold = list(bundle.eval[TAGS])
    for c in C_VALUES if len(eval_gold) else (1.0,):
        clf = LogisticRegression(C=c, max_iter=300).fit(scaler.transform(x), y)
        f1 = (entity_scores(entity_counts(eval_gold, tag(clf, parts[1]), types), types)["f1"]
              if len(eval_gold) else float("nan"))
        if best is None or f1 > best[0]:
            best = (f1, c, clf)
    f1, c, clf = best
    info = {"method": "logistic regression per word on the frozen base encoder's first-sub-token vectors "
                      "(the base has no token head; nothing of it is trained)",
            "C": c, "eval_f1": f1 if len(eval_gold) else None, "train_words": int(len(y))}
    return tag(clf, parts[2]), info


def evaluate_token_classification(cfg, bundle, model_dir: str | Path, *, champion_dir: str | Path | None = None,
                                  champion_name: str = "champion", out_dir: str | Path | None = None
                                  ) -> TokenEvalReport:
    """Score the tuned extractor, the word probe (and the champion) on `bundle.test` with entity-level metrics.

    Raises:
        EvalError: no test rows, or a model dir whose tags differ from the data's.
    """
    from tunesmith.evaluation.gates import primary_name

    test = bundle.test
    if len(test) == 0:
        raise EvalError("the test split is empty: nothing to evaluate", hint="raise data.split.test or set data.test")
    labels, types = list(bundle.labels), _types(bundle.labels)
    words, gold = [list(w) for w in test[TOKENS]], [list(t) for t in test[TAGS]]
    tuned_tags, truncated = _tags(model_dir, cfg, "model_dir", words, labels)
    base_tags, probe = word_probe(cfg, bundle, types)
    tuned_c, base_c = entity_counts(gold, tuned_tags, types), entity_counts(gold, base_tags, types)
    boot = cfg.evaluation.bootstrap
    primary = primary_name(cfg.training.metric)
    report = TokenEvalReport(
        primary_metric=primary if primary in ("f1", "macro_f1") else "f1", labels=labels,
        tuned=entity_scores(tuned_c, types), baseline=entity_scores(base_c, types),
        uplift=deltas(tuned_c, base_c, samples=boot.samples, confidence=boot.confidence, seed=cfg.seed),
        baseline_probe=probe, truncated_sentences=truncated,
        bootstrap={"samples": boot.samples, "confidence": boot.confidence, "seed": cfg.seed, "unit": "sentence"},
    )
    if truncated:
        report.notes.append(f"{truncated} test sentences are longer than model.max_length={cfg.model.max_length} "
                            "sub-tokens; their words past the cut count as predicted O")
    report.errors = _errors(test, words, gold, tuned_tags, base_tags)
    if champion_dir is not None:
        _compare_champion(report, cfg, champion_dir, champion_name, test, words, gold, tuned_c, types)
    return report


def _entities(words: list[str], tags: list[str]) -> list[str]:
    return [f"{kind}: {' '.join(words[s:e])}" for kind, s, e in sorted(entity_sets([tags])[0], key=lambda x: x[1])]


def _errors(test, words, gold, tuned, base) -> list[dict]:
    out = []
    for i in range(len(gold)):
        if entity_sets([gold[i]]) != entity_sets([tuned[i]]):
            out.append({"source": str(test["_source"].iloc[i]), "text": " ".join(words[i]),
                        "gold": _entities(words[i], gold[i]), "tuned": _entities(words[i], tuned[i]),
                        "baseline": _entities(words[i], base[i])})
        if len(out) >= EXAMPLES:
            break
    return out


def _compare_champion(report, cfg, champion_dir, name, test, words, gold, tuned_c, types) -> None:
    found = champion_on_unseen(report, champion_dir, name, test["text"].astype(str).tolist(),
                               lambda: _tags(champion_dir, cfg, "champion", words, report.labels)[0],
                               min_rows=MIN_CHAMPION_ROWS)
    if found is None:
        return
    keep = np.flatnonzero(found.mask)
    champ_c = entity_counts([gold[i] for i in keep], [found.scored[i] for i in keep], types)
    boot = cfg.evaluation.bootstrap
    report.champion, report.champion_status, report.vs_champion_rows = entity_scores(champ_c, types), COMPARED, len(keep)
    report.vs_champion = deltas(tuned_c[keep], champ_c, samples=boot.samples, confidence=boot.confidence, seed=cfg.seed)
    note_unseen_share(report, name, found.mask)


evaluate = evaluate_token_classification  # the family's evaluation entry (tunesmith.families.common.family)

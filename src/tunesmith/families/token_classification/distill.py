"""What the distillation report needs from token classification: a model's entity-level scores on the test split,
the paired comparison of two models over test sentences, and the model loaded for the latency measurement."""

from __future__ import annotations

from pathlib import Path

from tunesmith.config import Config
from tunesmith.families.token_classification.evaluate import _load, _tags, _types
from tunesmith.families.token_classification.metrics import deltas, entity_counts, entity_scores, scalar
from tunesmith.families.token_classification.rows import TAGS, TOKENS


def scores(cfg: Config, bundle, path: Path) -> dict:
    labels, types = list(bundle.labels), _types(bundle.labels)
    words, gold = [list(w) for w in bundle.test[TOKENS]], [list(t) for t in bundle.test[TAGS]]
    tags, _ = _tags(path, cfg, "model_dir", words, labels)
    counts = entity_counts(gold, tags, types)
    return {"quality": scalar(entity_scores(counts, types)), "counts": counts}


def delta(cfg: Config, a: dict, b: dict, metric: str) -> dict:
    """a - b on an entity metric (f1, macro_f1, precision, recall), paired bootstrap over test sentences."""
    boot = cfg.evaluation.bootstrap
    out = deltas(a["counts"], b["counts"], samples=boot.samples, confidence=boot.confidence, seed=cfg.seed)[metric]
    return {k: float(v) for k, v in out.items()}


def load(path: Path, cfg: Config) -> tuple:
    model, tokenizer = _load(path, cfg, "model_dir")
    return model.eval(), tokenizer

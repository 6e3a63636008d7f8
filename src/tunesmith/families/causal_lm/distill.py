"""What the distillation report needs from causal-lm: a model's held-out loss (token-weighted) on the test split, the
paired comparison of two models on it, and the model loaded for the latency measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tunesmith.config import Config
from tunesmith.evaluation.significance import bootstrap_delta
from tunesmith.families.causal_lm import model as causal_lm


def scores(cfg: Config, bundle, path: Path) -> dict:
    model = causal_lm.build_model(str(path), trust_remote_code=cfg.model.trust_remote_code)
    tokenizer = causal_lm.load_tokenizer(str(path), trust_remote_code=cfg.model.trust_remote_code)
    rows = list(zip(bundle.test["messages"], bundle.test["tools"], strict=True))
    with torch.inference_mode():
        sums, counts = causal_lm.example_losses(model, tokenizer, rows, max_length=cfg.model.max_length,
                                                train_on=cfg.chat.train_on)
    sums, counts = np.asarray(sums), np.maximum(np.asarray(counts), 1)
    return {"quality": {"loss": float(sums.sum() / counts.sum())}, "sums": sums, "counts": counts}


def delta(cfg: Config, a: dict, b: dict, metric: str) -> dict:
    """a - b in token-weighted loss, paired bootstrap over test conversations."""
    boot = cfg.evaluation.bootstrap

    def stat(s):
        return lambda idx: s["sums"][idx].sum(-1) / s["counts"][idx].sum(-1)

    out = bootstrap_delta(len(a["sums"]), stat(a), stat(b), samples=boot.samples, confidence=boot.confidence,
                          seed=cfg.seed)
    return {k: float(v) for k, v in out.items()}


def load(path: Path, cfg: Config) -> tuple:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path), use_safetensors=True,
                                                 trust_remote_code=cfg.model.trust_remote_code).eval()
    return model, AutoTokenizer.from_pretrained(str(path), trust_remote_code=cfg.model.trust_remote_code)

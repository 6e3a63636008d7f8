"""Load a registered model dir for serving: which task it serves (from config.json) and its model + tokenizer.

    served = load_served(model_dir, name="sentiment", version=3, options=cfg.serving.inference)

The task comes from `architectures` in config.json (…ForSequenceClassification, …ForCausalLM,
…ForTokenClassification); a plain encoder or a sentence-transformers dir serves embeddings.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch

_log = logging.getLogger(__name__)


class ServeTask(str, Enum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"  # a sequence-classification head with one output: /v1/score
    TOKEN_CLASSIFICATION = "token-classification"
    EMBEDDING = "embedding"
    CAUSAL_LM = "causal-lm"
    RERANKING = "reranking"  # a sentence-transformers CrossEncoder dir: /v1/rerank


# Which routes each task answers; everything else gets a 400 naming the routes it does answer.
ROUTES: dict[ServeTask, tuple[str, ...]] = {
    ServeTask.CLASSIFICATION: ("/v1/classify",),
    ServeTask.REGRESSION: ("/v1/score",),
    ServeTask.TOKEN_CLASSIFICATION: ("/v1/extract",),
    ServeTask.EMBEDDING: ("/v1/embeddings",),
    ServeTask.CAUSAL_LM: ("/v1/chat/completions", "/v1/completions"),
    ServeTask.RERANKING: ("/v1/rerank",),
}


class ServeLoadError(ValueError):
    """A model dir that cannot be served; the message says why and what to do."""


@dataclass
class Served:
    """One loaded model version, ready for inference; `lock` serialises generate() and streaming."""

    name: str
    version: int
    task: ServeTask
    model: Any
    tokenizer: Any
    model_dir: Path
    temperature: float = 1.0  # from calibration.json; logits / T before softmax
    labels: dict[int, str] = field(default_factory=dict)
    normalize: bool = False  # embeddings: sentence-transformers Normalize module present
    autocast: bool = False  # bf16 autocast verified against fp32
    max_length: int = 512
    backend: str = "fp32"  # what runs inference: fp32, bf16, int8, int8+bf16, onnx, onnx-int8 (optimize.py)
    thresholds: dict[int, float] | None = None  # multi-label: per-label decision thresholds (thresholds.json)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tag(self) -> str:
        """`name:version`, the value of the x-model-version header."""
        return f"{self.name}:{self.version}"

    def autocast_ctx(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast else _nullcontext()


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def detect_task(model_dir: Path) -> ServeTask:
    """The task a model dir serves, from config.json `architectures` (and num_labels for regression)."""
    config_path = Path(model_dir) / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ServeLoadError(f"{config_path}: cannot read the model config ({exc})") from None
    archs = config.get("architectures") or []
    arch = archs[0] if archs else ""
    if arch.endswith("ForSequenceClassification") and _is_cross_encoder(Path(model_dir)):
        return ServeTask.RERANKING
    if arch.endswith("ForSequenceClassification"):
        regression = config.get("problem_type") == "regression" or len(config.get("id2label") or {}) == 1
        return ServeTask.REGRESSION if regression else ServeTask.CLASSIFICATION
    if arch.endswith("ForCausalLM"):
        return ServeTask.CAUSAL_LM
    if arch.endswith("ForTokenClassification"):
        return ServeTask.TOKEN_CLASSIFICATION
    if (Path(model_dir) / "modules.json").exists() or arch.endswith("Model") or not arch:
        return ServeTask.EMBEDDING
    raise ServeLoadError(
        f"{config_path}: architecture {arch!r} is not one tunesmith serves; expected …ForSequenceClassification, "
        "…ForCausalLM, …ForTokenClassification or an encoder (embeddings)"
    )


def load_served(model_dir: Path, *, name: str, version: int, options=None) -> Served:
    """Load `model_dir` in eval mode with the CPU options in `options` (verified against fp32 before use)."""
    from transformers import (
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    model_dir = Path(model_dir)
    task = detect_task(model_dir)
    weights_dir = _transformer_dir(model_dir) if task is ServeTask.EMBEDDING else model_dir
    loader = {
        ServeTask.CLASSIFICATION: AutoModelForSequenceClassification,
        ServeTask.REGRESSION: AutoModelForSequenceClassification,
        ServeTask.RERANKING: AutoModelForSequenceClassification,
        ServeTask.TOKEN_CLASSIFICATION: AutoModelForTokenClassification,
        ServeTask.CAUSAL_LM: AutoModelForCausalLM,
        ServeTask.EMBEDDING: AutoModel,
    }[task]
    from tunesmith.hub import refuse_pickle_weights

    refuse_pickle_weights(weights_dir, key=f"model {name} version {version}")  # serving never unpickles
    tokenizer = AutoTokenizer.from_pretrained(weights_dir)
    model = loader.from_pretrained(weights_dir, use_safetensors=True, trust_remote_code=False).eval()
    if task is ServeTask.CAUSAL_LM:
        tokenizer.padding_side = "left"  # generation continues from the last real token
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    served = Served(
        name=name, version=int(version), task=task, model=model, tokenizer=tokenizer, model_dir=model_dir,
        temperature=_temperature(model_dir),
        labels={int(k): v for k, v in (getattr(model.config, "id2label", None) or {}).items()},
        normalize=_has_normalize(model_dir),
        max_length=min(int(getattr(tokenizer, "model_max_length", 512) or 512), 8192),
    )
    if getattr(model.config, "problem_type", None) == "multi_label_classification":
        served.thresholds = _thresholds(model_dir, served.labels)
    if options is not None:
        from tunesmith.serving.optimize import apply_inference_options

        apply_inference_options(served, options)
    return served


def _temperature(model_dir: Path) -> float:
    path = model_dir / "calibration.json"
    if not path.exists():
        return 1.0
    try:
        value = float(json.loads(path.read_text()).get("temperature", 1.0))
    except (ValueError, TypeError, AttributeError):
        _log.warning("%s: no usable temperature; serving uncalibrated probabilities", path)
        return 1.0
    return value if value > 0 else 1.0


def _is_cross_encoder(model_dir: Path) -> bool:
    """sentence-transformers writes its model type beside the weights (config_sentence_transformers.json)."""
    path = model_dir / "config_sentence_transformers.json"
    try:
        return path.exists() and json.loads(path.read_text()).get("model_type") == "CrossEncoder"
    except (ValueError, AttributeError):
        return False


def _thresholds(model_dir: Path, labels: dict[int, str]) -> dict[int, float]:
    """Per-label thresholds from thresholds.json (written by the multi-label evaluation); 0.5 where absent."""
    path = model_dir / "thresholds.json"
    known: dict = {}
    if path.exists():
        try:
            known = dict(json.loads(path.read_text()).get("thresholds") or {})
        except (ValueError, TypeError, AttributeError):
            _log.warning("%s: unreadable; serving with threshold 0.5 for every label", path)
    return {i: float(known.get(name, 0.5)) for i, name in labels.items()}


def _transformer_dir(model_dir: Path) -> Path:
    """A sentence-transformers dir keeps the encoder at its root or in the module its modules.json names."""
    modules = model_dir / "modules.json"
    if modules.exists():
        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith("Transformer") and module.get("path"):
                return model_dir / module["path"]
    return model_dir


def _has_normalize(model_dir: Path) -> bool:
    modules = model_dir / "modules.json"
    if not modules.exists():
        return False
    return any(m.get("type", "").endswith("Normalize") for m in json.loads(modules.read_text()))

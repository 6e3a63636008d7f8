"""Load a registered model dir for serving: which family it is (model/tunesmith.json) and its model + tokenizer.

    served = load_served(model_dir, name="sentiment", version=3, options=cfg.serving.inference)

The family comes from the dir's `tunesmith.json`. A dir without one (registered before the card existed, or trained
elsewhere) is recognized by each family's own rule in turn (a cross-encoder marker, `problem_type`, `architectures`);
the family then loads it (`Task.load_served`) and answers its routes (`Task.predict`).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tunesmith.families import all_families
from tunesmith.families import get as family
from tunesmith.model_card import read_model_card

_log = logging.getLogger(__name__)


class ServeLoadError(ValueError):
    """A model dir that cannot be served; the message says why and what to do."""


@dataclass
class Served:
    """One loaded model version, ready for inference; `lock` serialises generate() and streaming."""

    name: str
    version: int
    task: str  # the family's kind: "classification", "embedding", ...
    model_dir: Path
    model: Any = None
    tokenizer: Any = None
    weights_dir: Path | None = None  # where the transformer's weights are (a sentence-transformers module dir)
    output: str = "probabilities"  # what predict returns, for the fp32 check of an optimisation: probabilities,
    # sigmoid, value, embedding or next-token
    onnx_output: str | None = None  # the model output an ONNX export keeps (logits, last_hidden_state); None: no ONNX
    onnx_refusal: str = "ONNX export here is for encoder models"
    temperature: float = 1.0  # from calibration.json; logits / T before softmax
    labels: dict[int, str] = field(default_factory=dict)
    normalize: bool = False  # embeddings: sentence-transformers Normalize module present
    autocast: bool = False  # bf16 autocast verified against fp32
    max_length: int = 512
    backend: str = "fp32"  # what runs inference: fp32, bf16, int8, int8+bf16, onnx, onnx-int8 (optimize.py)
    thresholds: dict[int, float] | None = None  # multi-label: per-label decision thresholds (thresholds.json)
    upstream: Any = None  # serving.engine: openai-compatible: the engine that generates (serving.upstream.Upstream)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    settings: Any = None  # the ServingConfig it is served under (None outside a server: pyfunc, cost, jobs)
    scheduler: Any = None  # a family's own request scheduler (a chat model's continuous batching), or None
    batch_workers: int | None = None  # batcher batches in flight at once when the family batches by itself

    @property
    def tag(self) -> str:
        """`name:version`, the value of the x-model-version header."""
        return f"{self.name}:{self.version}"

    @property
    def family(self):
        return family(self.task)

    def autocast_ctx(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast else _nullcontext()


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def read_config_json(model_dir: Path) -> dict:
    config_path = Path(model_dir) / "config.json"
    try:
        return json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ServeLoadError(f"{config_path}: cannot read the model config ({exc})") from None


def detect_family(model_dir: Path) -> str:
    """The family of a model dir: its tunesmith.json, else the first family whose rule recognizes the dir."""
    card = read_model_card(model_dir)
    if card is not None:
        return family(card["family"]).kind
    config = read_config_json(model_dir)
    for task in sorted(all_families(), key=lambda t: t.recognize_order):
        if task.recognizes(Path(model_dir), config):
            return task.kind
    archs = config.get("architectures") or []
    raise ServeLoadError(
        f"{Path(model_dir) / 'config.json'}: architecture {(archs or [''])[0]!r} is not one tunesmith serves; expected "
        "…ForSequenceClassification, …ForCausalLM, …ForTokenClassification or an encoder (embeddings)")


def load_served(model_dir: Path, *, name: str, version: int, options=None, settings=None) -> Served:
    """Load `model_dir` in eval mode with the CPU options in `options` (verified against fp32 before use);
    `settings` is the server's ServingConfig (a family may batch by its own rules under it); when its `engine` is
    openai-compatible the family's engine hooks serve the model instead."""
    model_dir = Path(model_dir)
    served = Served(name=name, version=int(version), task=detect_family(model_dir), model_dir=model_dir,
                    settings=settings)
    if getattr(settings, "engine", "local") != "local":
        hooks = served.family.engine
        if hooks is None:
            raise ServeLoadError(f"serving.engine: {settings.engine} forwards generation to an engine; {served.tag} is "
                                 f"a {served.task} model, which tunesmith serves itself: set serving.engine: local")
        hooks.load(model_dir, served, settings.upstream)
        return served
    served.family.load_served(model_dir, served)
    if options is not None:
        from tunesmith.serving.optimize import apply_inference_options

        apply_inference_options(served, options)
    return served


def load_transformer(served: Served, auto_cls, weights_dir: Path | None = None) -> None:
    """The usual `load_served`: tokenizer and `auto_cls` weights (safetensors only, no remote code), eval mode."""
    from transformers import AutoTokenizer

    from tunesmith.hub import refuse_pickle_weights

    weights_dir = Path(weights_dir or served.model_dir)
    refuse_pickle_weights(weights_dir, key=f"model {served.name} version {served.version}")  # serving never unpickles
    served.weights_dir = weights_dir
    served.tokenizer = AutoTokenizer.from_pretrained(weights_dir)
    served.model = auto_cls.from_pretrained(weights_dir, use_safetensors=True, trust_remote_code=False).eval()
    served.labels = {int(k): v for k, v in (getattr(served.model.config, "id2label", None) or {}).items()}
    served.max_length = min(int(getattr(served.tokenizer, "model_max_length", 512) or 512), 8192)


def temperature_of(model_dir: Path) -> float:
    """The temperature in calibration.json (1.0 when the dir has none or it is unusable)."""
    path = model_dir / "calibration.json"
    if not path.exists():
        return 1.0
    try:
        value = float(json.loads(path.read_text()).get("temperature", 1.0))
    except (ValueError, TypeError, AttributeError):
        _log.warning("%s: no usable temperature; serving uncalibrated probabilities", path)
        return 1.0
    return value if value > 0 else 1.0


def is_cross_encoder(model_dir: Path) -> bool:
    """sentence-transformers writes its model type beside the weights (config_sentence_transformers.json)."""
    path = model_dir / "config_sentence_transformers.json"
    try:
        return path.exists() and json.loads(path.read_text()).get("model_type") == "CrossEncoder"
    except (ValueError, AttributeError):
        return False


def thresholds_of(model_dir: Path, labels: dict[int, str]) -> dict[int, float]:
    """Per-label thresholds from thresholds.json (written by the multi-label evaluation); 0.5 where absent."""
    path = model_dir / "thresholds.json"
    known: dict = {}
    if path.exists():
        try:
            known = dict(json.loads(path.read_text()).get("thresholds") or {})
        except (ValueError, TypeError, AttributeError):
            _log.warning("%s: unreadable; serving with threshold 0.5 for every label", path)
    return {i: float(known.get(name, 0.5)) for i, name in labels.items()}


def transformer_dir(model_dir: Path) -> Path:
    """A sentence-transformers dir keeps the encoder at its root or in the module its modules.json names."""
    modules = model_dir / "modules.json"
    if modules.exists():
        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith("Transformer") and module.get("path"):
                return model_dir / module["path"]
    return model_dir


def has_normalize(model_dir: Path) -> bool:
    modules = model_dir / "modules.json"
    if not modules.exists():
        return False
    return any(m.get("type", "").endswith("Normalize") for m in json.loads(modules.read_text()))


def architecture(config: dict) -> str:
    archs = config.get("architectures") or []
    return archs[0] if archs else ""

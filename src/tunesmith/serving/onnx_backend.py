"""ONNX Runtime for encoder models: export the served model once, cache it next to the model, run it with ORT.

    model = onnx_model(served, threads=1)   # OrtModel, called like the torch model: model(**enc).logits

The export is cached as `<model dir>/onnx/model-<fingerprint>.onnx` (written atomically), keyed by the weights,
config, task, torch and opset versions, so a restart reuses it and a changed model never picks up a stale file.
With `quantize: int8` the export is also quantized by ONNX Runtime (dynamic int8 weights, `model-<fp>-int8.onnx`).
optimize.py checks its outputs against fp32 on the probe texts before it serves anything.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import torch

from tunesmith.io import atomic_write_bytes

if TYPE_CHECKING:
    from tunesmith.serving.models import Served

_log = logging.getLogger("tunesmith.serving")

OPSET = 17


class OnnxUnsupported(ValueError):
    """This model cannot run on ONNX Runtime here; the message says why (the server stays on torch)."""


class OrtModel:
    """An onnxruntime session with the torch model's call shape: `model(**enc)` -> object with `.logits` (or
    `.last_hidden_state`) as a torch tensor, so the batch handlers run unchanged."""

    def __init__(self, session, output: str, config, path: Path | None):
        self.session, self.output, self.config, self.path = session, output, config, path
        self.inputs = [i.name for i in session.get_inputs()]

    def __call__(self, **enc):
        feeds = {name: enc[name].numpy() for name in self.inputs}
        (out,) = self.session.run([self.output], feeds)
        return SimpleNamespace(**{self.output: torch.from_numpy(out)})


def fingerprint(served: Served, weights_dir: Path) -> str:
    """sha256 of what the export depends on: weights, config, task, torch and opset versions."""
    digest = hashlib.sha256(f"{served.task}|torch {torch.__version__}|opset {OPSET}".encode())
    for path in sorted(weights_dir.glob("*.safetensors")) + [weights_dir / "config.json"]:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def export_onnx(served: Served) -> bytes:
    """The served torch model as ONNX bytes, dynamic in batch and sequence length."""
    output = served.onnx_output
    enc = served.tokenizer(["a probe", "a longer probe text"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[output] = {0: "batch"} if output == "logits" else {0: "batch", 1: "sequence"}

    class Wrapped(torch.nn.Module):  # positional inputs -> the one output the handlers read
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *args):
            return getattr(self.model(**dict(zip(names, args, strict=True))), output)

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(Wrapped(served.model), tuple(enc[n] for n in names), buffer, input_names=names,
                          output_names=[output], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def onnx_model(served: Served, weights_dir: Path, *, threads: int | None = None, int8: bool = False) -> OrtModel:
    """Load the cached export for this exact model, or export and cache it; an ORT session over it.
    `int8`: ONNX Runtime's dynamic int8 quantization of that export (cached beside it)."""
    if served.onnx_output is None:  # the family says which output an export keeps, or why there is none
        raise OnnxUnsupported(f"{served.task} model: {served.onnx_refusal}")
    try:
        import onnxruntime as ort
    except ImportError:
        raise OnnxUnsupported("onnxruntime is not installed; pip install 'tunesmith[serve]'") from None
    path = weights_dir / "onnx" / f"model-{fingerprint(served, weights_dir)[:16]}.onnx"
    data, path = _cached(served, path, lambda: export_onnx(served))
    if int8:
        int8_path = path.with_name(path.stem + "-int8.onnx") if path is not None else None
        data, path = _cached(served, int8_path, lambda: quantize_int8(data))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return OrtModel(session, served.onnx_output, served.model.config, path)


def quantize_int8(model: bytes) -> bytes:
    """ONNX Runtime's dynamic quantization: int8 weights, activations quantized per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="tunesmith-onnx-") as tmp:
        source, target = Path(tmp) / "model.onnx", Path(tmp) / "model-int8.onnx"
        source.write_bytes(model)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


def _cached(served: Served, path: Path | None, make) -> tuple[bytes, Path | None]:
    """The bytes at `path` if it exists, else `make()` written there atomically (None: could not cache)."""
    if path is not None and path.exists():
        _log.info("%s: using cached ONNX model %s", served.tag, path)
        return path.read_bytes(), path
    data = make()
    if path is None:
        return data, None
    try:
        atomic_write_bytes(path, data)
        _log.info("%s: ONNX model written to %s", served.tag, path)
    except OSError as exc:  # a read-only model dir: serve from memory, export again next start
        _log.warning("%s: cannot cache the ONNX model at %s (%s); using it uncached", served.tag, path, exc)
        return data, None
    return data, path

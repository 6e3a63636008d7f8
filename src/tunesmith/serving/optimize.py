"""CPU inference options (ONNX Runtime, bf16 autocast, dynamic int8), each checked against fp32 outputs first.

    apply_inference_options(served, cfg.serving.inference)   # logs what it kept and why it fell back

The check runs a few fixed probe texts through the fp32 model and the optimised one; if any output moves
more than `tolerance` (probabilities, cosine distance of embeddings, next-token probabilities), the
option is dropped with a warning and the model serves in fp32. `served.backend` names what is live
(fp32, onnx, int8, bf16, int8+bf16); the server exports it as `tunesmith_inference_backend`.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tunesmith.serving.models import Served


_log = logging.getLogger("tunesmith.serving")

PROBES = [
    "The delivery arrived late and the box was damaged.",
    "Great service, thank you!",
    "How do I reset my password?",
    "Das Produkt ist gut, aber teuer.",
]


def probe_outputs(served: Served) -> torch.Tensor:
    """Comparable outputs of the probe texts, by what the model's family serves (`served.output`): probabilities,
    sigmoid scores, values, unit embeddings or next-token probabilities."""
    enc = served.tokenizer(PROBES, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.inference_mode(), served.autocast_ctx():
        out = served.model(**enc)
    if served.output == "embedding":
        hidden = out.last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    logits = out.logits.float()
    if served.output == "next-token":
        last = enc["attention_mask"].sum(1) - 1 if served.tokenizer.padding_side == "right" else None
        logits = logits[torch.arange(len(PROBES)), last] if last is not None else logits[:, -1]
    if served.output == "value":
        return logits
    if served.output == "sigmoid":  # independent scores (reranker, multi-label)
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=-1)


def deviation(reference: torch.Tensor, candidate: torch.Tensor, output: str) -> float:
    if output == "embedding":
        return float((1 - (reference * candidate).sum(-1)).max())
    return float((reference - candidate).abs().max())


def apply_inference_options(served: Served, options) -> list[str]:
    """Turn on the options in `options` that stay within tolerance of fp32; returns the ones kept."""
    if options.num_threads:
        torch.set_num_threads(options.num_threads)
    wanted = [o for o in (("int8" if options.quantize == "int8" else None),
                          ("bf16" if options.dtype == "bf16" else None)) if o]
    onnx = getattr(options, "backend", "torch") == "onnx"
    if not wanted and not onnx:
        return []
    reference = probe_outputs(served)
    if onnx and _try_onnx(served, options, reference):
        if "bf16" in wanted:
            _log.info("%s: bf16 not applied: ONNX Runtime serves this model", served.tag)
        return [served.backend]
    kept = []
    for option in wanted:
        fp32_model = served.model
        try:
            if option == "int8":
                with warnings.catch_warnings():  # torch.ao's deprecation notice; the API still works here
                    warnings.simplefilter("ignore")
                    served.model = torch.ao.quantization.quantize_dynamic(
                        copy.deepcopy(fp32_model), {torch.nn.Linear}, dtype=torch.qint8)
            else:
                served.autocast = True
            dev = deviation(reference, probe_outputs(served), served.output)
        except Exception as exc:  # an op the backend cannot run: fall back, say why
            dev, why = float("inf"), f"{type(exc).__name__}: {exc}"
        else:
            why = f"max deviation {dev:.4f} > tolerance {options.tolerance:g}"
        if dev <= options.tolerance:
            kept.append(option)
            _log.info("%s: %s inference on (max deviation from fp32 %.4f)", served.tag, option, dev)
        else:
            served.model = fp32_model
            if option == "bf16":
                served.autocast = False
            _log.warning("%s: %s inference not used, serving fp32 instead (%s)", served.tag, option, why)
    served.backend = "+".join(kept) or "fp32"
    return kept


def _try_onnx(served: Served, options, reference: torch.Tensor) -> bool:
    """Serve through ONNX Runtime if the export works and matches fp32 on the probes; else keep torch, say why."""
    from tunesmith.serving.onnx_backend import onnx_model

    fp32_model = served.model
    try:
        served.model = onnx_model(served, served.weights_dir or served.model_dir, threads=options.num_threads, int8=options.quantize == "int8")
        dev = deviation(reference, probe_outputs(served), served.output)
        why = f"max deviation {dev:.4f} > tolerance {options.tolerance:g}"
    except Exception as exc:  # an export or runtime failure: fall back, say why
        dev, why = float("inf"), f"{type(exc).__name__}: {exc}"
    if dev <= options.tolerance:
        served.backend = "onnx-int8" if options.quantize == "int8" else "onnx"
        _log.info("%s: %s inference on (ONNX Runtime; max deviation from fp32 %.2g)", served.tag, served.backend, dev)
        return True
    served.model = fp32_model
    _log.warning("%s: onnx inference not used, serving torch instead (%s)", served.tag, why)
    return False

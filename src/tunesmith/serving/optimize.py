"""CPU inference options (bf16 autocast, dynamic int8), each checked against fp32 outputs before it is used.

    apply_inference_options(served, cfg.serving.inference)   # logs what it kept and why it fell back

The check runs a few fixed probe texts through the fp32 model and the optimised one; if any output moves
more than `tolerance` (probabilities, cosine distance of embeddings, next-token probabilities), the
option is dropped with a warning and the model serves in fp32.
"""

from __future__ import annotations

import copy
import logging
import warnings

import torch

from tunesmith.serving.models import Served, ServeTask

_log = logging.getLogger("tunesmith.serving")

PROBES = [
    "The delivery arrived late and the box was damaged.",
    "Great service, thank you!",
    "How do I reset my password?",
    "Das Produkt ist gut, aber teuer.",
]


def probe_outputs(served: Served) -> torch.Tensor:
    """Comparable outputs of the probe texts: probabilities, unit embeddings, or next-token probabilities."""
    enc = served.tokenizer(PROBES, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.inference_mode(), served.autocast_ctx():
        out = served.model(**enc)
    if served.task is ServeTask.EMBEDDING:
        hidden = out.last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    logits = out.logits.float()
    if served.task is ServeTask.CAUSAL_LM:
        last = enc["attention_mask"].sum(1) - 1 if served.tokenizer.padding_side == "right" else None
        logits = logits[torch.arange(len(PROBES)), last] if last is not None else logits[:, -1]
    if served.task is ServeTask.REGRESSION:
        return logits
    if served.task is ServeTask.RERANKING or served.thresholds is not None:  # sigmoid scores (reranker, multi-label)
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=-1)


def deviation(reference: torch.Tensor, candidate: torch.Tensor, task: ServeTask) -> float:
    if task is ServeTask.EMBEDDING:
        return float((1 - (reference * candidate).sum(-1)).max())
    return float((reference - candidate).abs().max())


def apply_inference_options(served: Served, options) -> list[str]:
    """Turn on the options in `options` that stay within tolerance of fp32; returns the ones kept."""
    if options.num_threads:
        torch.set_num_threads(options.num_threads)
    wanted = [o for o in (("int8" if options.quantize == "int8" else None),
                          ("bf16" if options.dtype == "bf16" else None)) if o]
    if not wanted:
        return []
    reference = probe_outputs(served)
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
            dev = deviation(reference, probe_outputs(served), served.task)
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
    return kept

"""The image classifier: any transformers `AutoModelForImageClassification` (ViT, ConvNeXt, ... from the hub or a
dir) or tunesmith's EfficientNet-Lite (builtin:efficientnet-lite0), with its image processor (Pillow/numpy path).

    model = build_model(path, labels)                  # a fresh head sized for the labels
    logits = image_logits(model, prep, paths)          # (N, labels) in eval mode, batched
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

import tunesmith.vision.efficientnet  # noqa: F401 (registers EfficientNet-Lite with the Auto classes)
from tunesmith.families.image_classification.transforms import Preprocess, load_rgb


def lora_targets(model) -> list[str]:
    """LoRA targets when method.lora.target_modules is not set: the names of the backbone's Linear layers and its
    dense (ungrouped) Conv2d layers, which peft adapts alike; depthwise convolutions and the head are left out."""
    names = set()
    for name, module in model.base_model.named_modules():
        conv = isinstance(module, torch.nn.Conv2d) and module.groups == 1 and module.kernel_size == (1, 1)
        if isinstance(module, torch.nn.Linear) or conv:
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def load_processor(path: str, *, revision: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)


def build_model(path: str, labels: Sequence[str], *, revision: str | None = None, trust_remote_code: bool = False):
    """The base with a new classification head for `labels` (id2label in its config)."""
    from transformers import AutoModelForImageClassification

    return AutoModelForImageClassification.from_pretrained(
        path, revision=revision, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, ignore_mismatched_sizes=True,
        trust_remote_code=trust_remote_code, use_safetensors=None)


def load_classifier(path: str | Path):
    """A trained image classifier and its processor, in eval mode (safetensors only)."""
    from transformers import AutoModelForImageClassification

    from tunesmith.hub import refuse_pickle_weights

    refuse_pickle_weights(path, key=str(path))
    model = AutoModelForImageClassification.from_pretrained(str(path), use_safetensors=True).eval()
    return model, load_processor(str(path))


@torch.inference_mode()
def image_logits(model, prep: Preprocess, images: Sequence, batch_size: int = 32) -> np.ndarray:
    """Logits of each image (a path or a PIL image), in order."""
    out = []
    for start in range(0, len(images), batch_size):
        pixels = prep.batch([load_rgb(p) for p in images[start:start + batch_size]])
        out.append(model(pixel_values=pixels).logits.float().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), dtype=np.float32)


@torch.inference_mode()
def image_features(model, prep: Preprocess, images: Sequence, batch_size: int = 32) -> np.ndarray:
    """The frozen backbone's pooled features of each image (what the linear-probe baseline fits on)."""
    out = []
    for start in range(0, len(images), batch_size):
        pixels = prep.batch([load_rgb(p) for p in images[start:start + batch_size]])
        out.append(pooled(model, pixels).float().numpy())
    return np.concatenate(out)


def pooled(model, pixels: torch.Tensor) -> torch.Tensor:
    """The base model's image embedding: its pooler output, else the mean of its last hidden state."""
    base = model.base_model
    outputs = base(pixel_values=pixels)
    if isinstance(outputs, torch.Tensor):  # EfficientNet-Lite's backbone returns pooled features
        return outputs
    if getattr(outputs, "pooler_output", None) is not None:
        return outputs.pooler_output.flatten(1)
    hidden = outputs.last_hidden_state
    return hidden.mean(dim=1) if hidden.dim() == 3 else hidden.mean(dim=(2, 3))

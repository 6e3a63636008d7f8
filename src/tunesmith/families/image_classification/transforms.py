"""Images to model inputs: decode to RGB, resize, normalize; and the seeded training augmentation (random resized
crop, horizontal flip, brightness/contrast/saturation jitter) on torch tensors, without torchvision.

    prep = Preprocess.of(processor, size=None)
    pixels = prep.batch([load_rgb(p) for p in paths])                     # eval / serving
    pixels = prep.batch(images, augment=cfg.image.augment, generator=g)   # training
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def load_rgb(source) -> torch.Tensor:
    """A file path or a PIL image as a uint8 tensor (3, H, W)."""
    from PIL import Image

    if isinstance(source, str | Path):
        with Image.open(source) as im:
            im = im.convert("RGB")
    else:
        im = source.convert("RGB")
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


@dataclass(frozen=True)
class Preprocess:
    """What the model's image processor asks for: the square input size and the normalization."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, processor, size: int | None = None) -> Preprocess:
        found = getattr(processor, "size", None) or {}
        side = size or found.get("height") or found.get("shortest_edge") or 224
        return cls(int(side), tuple(processor.image_mean), tuple(processor.image_std))

    def batch(self, images: list[torch.Tensor], *, augment=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 3, size, size) float pixels, normalized; augmented when `augment` (an AugmentConfig) is given."""
        out = [self.one(im, augment, generator) for im in images]
        x = torch.stack(out)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)

    def one(self, image: torch.Tensor, augment, generator) -> torch.Tensor:
        x = image.float().div(255.0)
        if augment is not None:
            x = random_resized_crop(x, augment.crop_scale, generator)
        x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear", align_corners=False,
                          antialias=True)[0]
        if augment is not None:
            if augment.flip and _uniform(generator) < 0.5:
                x = x.flip(-1)
            if augment.jitter:
                x = color_jitter(x, augment.jitter, generator)
        return x.clamp(0, 1)


def _uniform(g: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return float(low + (high - low) * torch.rand((), generator=g))


def random_resized_crop(x: torch.Tensor, min_scale: float, g: torch.Generator | None) -> torch.Tensor:
    """A crop of a random share in [min_scale, 1] of the area, aspect ratio in [3/4, 4/3] (as Inception's)."""
    _, h, w = x.shape
    for _ in range(10):
        area = h * w * _uniform(g, min_scale, 1.0)
        ratio = float(np.exp(_uniform(g, np.log(3 / 4), np.log(4 / 3))))
        ch, cw = int(round((area / ratio) ** 0.5)), int(round((area * ratio) ** 0.5))
        if 0 < ch <= h and 0 < cw <= w:
            top = int(torch.randint(0, h - ch + 1, (), generator=g))
            left = int(torch.randint(0, w - cw + 1, (), generator=g))
            return x[:, top:top + ch, left:left + cw]
    return x


def color_jitter(x: torch.Tensor, amount: float, g: torch.Generator | None) -> torch.Tensor:
    """Brightness, contrast and saturation each scaled by a factor in [1 - amount, 1 + amount]."""
    x = x * _uniform(g, 1 - amount, 1 + amount)
    mean = x.mean()
    x = (x - mean) * _uniform(g, 1 - amount, 1 + amount) + mean
    gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
    return (x - gray) * _uniform(g, 1 - amount, 1 + amount) + gray

"""`image:` config section of the image families: the image column, the limits past which a file is refused, the
near-duplicate distance and the training augmentation."""

from __future__ import annotations

from pydantic import Field

from tunesmith.config.base import StrictModel


class AugmentConfig(StrictModel):
    """Seeded augmentation of each training image (torch tensors; eval and serving see the plain resize)."""

    crop_scale: float = Field(0.6, gt=0, le=1, description="random resized crop keeps between this share of the "
                              "image and all of it (1: no crop)")
    flip: bool = Field(True, description="random horizontal flip")
    jitter: float = Field(0.1, ge=0, le=0.5, description="brightness, contrast and saturation jitter (0: none)")


class ImageConfig(StrictModel):
    """image: how image rows are read and checked, and how training images are augmented."""

    column: str = Field("image", description="the table column with each image's path, relative to the table file "
                        "(an image folder needs none: one subfolder per label)")
    max_pixels: int = Field(40_000_000, ge=1, description="width x height above which an image is refused before "
                            "decoding (decompression bombs); also what the route accepts")
    max_bytes: int = Field(20 * 2**20, ge=1, description="largest image file read or accepted by the route")
    near_distance: int = Field(4, ge=0, le=32, description="perceptual-hash bits (of 64) within which two images are "
                               "near-duplicates (data.checks.duplicates / leakage)")
    size: int | None = Field(None, ge=8, le=1024, description="input size; None: the model's image processor's")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

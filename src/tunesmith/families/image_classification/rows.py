"""Image rows (tunesmith.data.images) for the image classifier: reading, checking, the label list and the image data
gates beside the generic ones."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tunesmith.data.errors import DataError, quoted
from tunesmith.data.images import ImageSettings, check_image_rows, read_image_table
from tunesmith.data.schema import LABEL


def settings(cfg) -> ImageSettings:
    return ImageSettings(cfg.image.column, max_pixels=cfg.image.max_pixels, max_bytes=cfg.image.max_bytes)


def read_table(key: str, path: Path, cfg):
    return read_image_table(key, path, cfg.data.format, cfg.data.max_line_bytes)


def check_rows(table, cfg):
    return check_image_rows(table, cfg.data, settings(cfg))


def label_set(splits: dict[str, pd.DataFrame], cfg, files: list) -> tuple[list[str], list[str]]:
    """data.labels, else the sorted train labels; train needs two and eval/test no label train lacks."""
    found = sorted(splits["train"][LABEL].unique().tolist())
    if len(found) < 2:
        raise DataError("data.label_column", f"train has {len(found)} label(s) {quoted(found)}; a classifier needs at "
                        "least 2", "check the labels (the subfolder names of an image folder)")
    for name in ("eval", "test"):
        unseen = sorted(set(splits[name][LABEL]) - set(found))
        if unseen:
            raise DataError(name, f"labels {quoted(unseen)} occur in {name} but never in train",
                            "add training images with these labels, or leave them out with data.drop_labels")
    labels = list(cfg.data.labels) if cfg.data.labels else found
    missing = [label for label in labels if label not in found]
    return labels, [f"data.labels {quoted(missing)} have no training images"] if missing else []


def label_checks(cfg, out, run_dir: Path | None) -> None:
    """The image gates (near-duplicates, leakage, EXIF PII, modes) and class balance; label issues need a frozen-
    feature probe over images, which is not built yet (recorded as skipped, with the reason)."""
    from tunesmith.data.image_checks import image_checks

    image_checks(cfg, out, run_dir, cfg.image.near_distance)
    out.findings["label_issues"] = {"enabled": cfg.data.checks.label_issues.enabled, "status": "skipped",
                                    "skipped": "not yet for images (cleanlab on frozen-backbone features is planned)"}
    counts = out.splits["train"][LABEL].value_counts()
    ratio = float(counts.max() / counts.min()) if len(counts) else 1.0
    limit = cfg.data.checks.imbalance.max_ratio
    out.findings["imbalance"] = {"status": "warn" if ratio > limit else "pass", "ratio": round(ratio, 2),
                                 "max_ratio": limit, "train_counts": {str(k): int(v) for k, v in counts.items()}}
    if ratio > limit:
        out.warnings.append(f"data.checks.imbalance: the largest train class has {ratio:.1f}x the images of the "
                            f"smallest (limit {limit:g}); set training.class_weights: true")


def no_text_redaction(frame, hits, redact=None) -> None:
    """An image row's text is its pixels' hash: nothing to redact there (EXIF is the image gates' business)."""

"""Image rows (tunesmith.data.images) for the image classifier: reading, checking, the label list and the image data
gates beside the generic ones."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tunesmith.data.errors import DataError, quoted
from tunesmith.data.images import ImageSettings, check_image_rows, read_image_table
from tunesmith.data.schema import LABEL


def settings(cfg) -> ImageSettings:
    near = cfg.data.checks.leakage
    distance = cfg.image.near_distance if near.near and near.policy.value != "off" else None
    return ImageSettings(cfg.image.column, max_pixels=cfg.image.max_pixels, max_bytes=cfg.image.max_bytes,
                         near_distance=distance)


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
    """The image gates (near-duplicates, leakage, EXIF PII, modes), likely label errors and class balance."""
    from tunesmith.data.checks import label_issues_skipped
    from tunesmith.data.image_checks import image_checks

    image_checks(cfg, out, run_dir, cfg.image.near_distance)
    if run_dir is None:
        label_issues_skipped(cfg, out)
    else:
        label_issues(cfg, out)
    imbalance(cfg, out)


def label_issues(cfg, out) -> None:
    """cleanlab over out-of-fold probabilities of a logistic-regression probe on the frozen model.base backbone's
    pooled image features (every split, a seeded sample of at most max_rows): candidates for review."""
    from tunesmith.data.images import IMAGE
    from tunesmith.data.label_issues import find_label_issues
    from tunesmith.data.schema import SOURCE, TEXT

    c = cfg.data.checks.label_issues
    if not c.enabled:
        out.findings["label_issues"] = {"enabled": False, "status": "off"}
        return
    rows = pd.concat([f.assign(_split=n) for n, f in out.splits.items()], ignore_index=True)
    if len(rows) < c.min_rows:
        out.findings["label_issues"] = {"enabled": True, "status": "skipped", "rows_checked": 0, "skipped":
                                        f"{len(rows)} images: fewer than data.checks.label_issues.min_rows ({c.min_rows})"}
        return
    if len(rows) > c.max_rows:
        rows = rows.sample(n=c.max_rows, random_state=cfg.seed).reset_index(drop=True)
    labels = sorted(rows[LABEL].unique().tolist()) if cfg.data.labels is None else list(cfg.data.labels)
    paths = dict(zip(rows[TEXT], rows[IMAGE], strict=True))
    embed = _base_features(cfg)
    found = find_label_issues(rows[TEXT].tolist(), [labels.index(v) for v in rows[LABEL]], len(labels),
                              embed=lambda texts: embed([paths[t] for t in texts]), folds=c.folds, seed=cfg.seed)
    flagged = [{"source": rows[SOURCE].iat[i], "split": rows["_split"].iat[i], "image": rows[IMAGE].iat[i],
                "given": labels[int(found.given[i])], "suggested": labels[int(found.suggested[i])],
                "given_label_probability": round(float(found.self_confidence[i]), 4)} for i in found.indices]
    out.findings["label_issues"] = {
        "enabled": True, "status": "skipped" if found.skipped else ("review" if flagged else "pass"),
        "features": "frozen model.base backbone (pooled image features)", "rows_checked": len(rows),
        "model": "logistic regression, out-of-fold (cleanlab.filter.find_label_issues)", "flagged": len(flagged),
        "folds": found.folds, "top": flagged[: c.top], "notes": found.notes,
        **({"skipped": found.skipped} if found.skipped else {})}
    if flagged:
        out.warnings.append(f"data.checks.label_issues: {len(flagged)} of {len(rows)} images look mislabeled to a "
                            f"probe ({', '.join(f['source'] for f in flagged[:3])}, ...); review them")


def _base_features(cfg):
    from tunesmith.families.image_classification.model import build_model, image_features, load_processor
    from tunesmith.families.image_classification.transforms import Preprocess
    from tunesmith.hub import loading, resolve_model

    resolved = resolve_model(cfg.model.base, cfg.model.revision)
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):
        model = build_model(resolved.path, ["a", "b"], revision=resolved.revision).eval()
        prep = Preprocess.of(load_processor(resolved.path, revision=resolved.revision), cfg.image.size)
    return lambda paths: image_features(model, prep, paths, cfg.training.eval_batch_size)


def imbalance(cfg, out) -> None:
    """Largest / smallest train class against data.checks.imbalance.max_ratio (a warning with the fix)."""
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

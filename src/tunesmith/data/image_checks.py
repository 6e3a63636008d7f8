"""The data gates that only images have, run with the generic ones (same policies, same data card):

- near-duplicates: perceptual hashes (imagehash's DCT pHash) within `image.near_distance` bits of each other, in
  one split (data.checks.duplicates) or across splits (leakage, data.checks.leakage with `near: true`); exact
  duplicates and exact leaks are the generic checks' (an image row's text is its pixels' hash);
- personal metadata: EXIF GPS positions and camera/lens serial numbers (data.checks.pii: `redact` trains on a copy
  of the image without its metadata, `drop` quarantines the row, `fail` stops the run);
- modes: images converted to RGB, counted.

    image_checks(cfg, outcome, run_dir, near_distance=4)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import CheckPolicy
from tunesmith.data.checks import EXAMPLES, SPLIT_ORDER, ChecksOutcome, drop_rows
from tunesmith.data.images import EXIF, IMAGE, MODE, PHASH, close_pairs
from tunesmith.data.schema import SOURCE, TEXT

NEAR_IMAGE, LEAK_NEAR_IMAGE = "near_duplicate_image", "leak_near_image"
REDACTED_DIR = "images_redacted"  # under the run dir: the training copies without EXIF


def image_checks(cfg, out: ChecksOutcome, run_dir: Path | None, near_distance: int) -> None:
    """Near-duplicate images and leakage, EXIF PII and converted modes, into `out` under the configured policies."""
    checks = cfg.data.checks
    if checks.duplicates.near.enabled and checks.duplicates.policy is not CheckPolicy.OFF:
        _apply(cfg, out, "duplicates", NEAR_IMAGE, checks.duplicates.policy, _near_within(out, near_distance))
    if checks.leakage.near and checks.leakage.policy is not CheckPolicy.OFF:
        _apply(cfg, out, "leakage", LEAK_NEAR_IMAGE, checks.leakage.policy, _near_across(out, near_distance))
    exif_pii(cfg, out, run_dir)
    modes = Counter(m for f in out.splits.values() for m in f[MODE])
    out.findings["image_modes"] = {"status": "converted" if set(modes) - {"RGB"} else "pass",
                                   "modes": dict(sorted(modes.items())),
                                   "converted_to_rgb": sum(n for m, n in modes.items() if m != "RGB")}


def hashes(frame) -> np.ndarray:
    return np.array([int(h, 16) for h in frame[PHASH]], dtype=np.uint64)


def _near_within(out: ChecksOutcome, distance: int) -> dict[str, dict[int, tuple[str, int, int]]]:
    """split -> {later row: (split, the earlier row it nearly repeats, bits apart)}; exact copies are left out."""
    found = {}
    for name in SPLIT_ORDER:
        frame = out.splits[name]
        h, texts, hits = hashes(frame), frame[TEXT].to_numpy(), {}
        for j, i, bits in close_pairs(h, h, distance, same=True):
            if texts[i] != texts[j] and (j not in hits or i < hits[j][1]):
                hits[j] = (name, i, bits)
        found[name] = hits
    return found


def _near_across(out: ChecksOutcome, distance: int) -> dict[str, dict[int, tuple[str, int, int]]]:
    """split -> {row: (earlier split, its row, bits apart)} for eval/test images near one of an earlier split."""
    found: dict[str, dict] = {"train": {}}
    for k, name in enumerate(SPLIT_ORDER[1:], start=1):
        frame, hits = out.splits[name], {}
        texts = frame[TEXT].to_numpy()
        for earlier in SPLIT_ORDER[:k]:
            other = out.splits[earlier]
            other_texts = other[TEXT].to_numpy()
            for j, i, bits in close_pairs(hashes(frame), hashes(other), distance):
                if texts[j] != other_texts[i] and (j not in hits or bits < hits[j][2]):  # exact: the generic check's
                    hits[j] = (earlier, i, bits)
        found[name] = hits
    return found


def _apply(cfg, out: ChecksOutcome, check: str, kind: str, policy: CheckPolicy, found: dict) -> None:
    """Add the near-image rows to the generic `check` finding (by_kind[kind]) and act on them under `policy`."""
    finding = out.findings.setdefault(check, {"policy": policy.value, "status": "pass", "rows": 0, "by_kind": {}})
    examples = [{"row": out.splits[s][SOURCE].iat[j], "split": s, "of": out.splits[e][SOURCE].iat[i],
                 "hamming_bits": bits} for s, hits in found.items() for j, (e, i, bits) in hits.items()][:EXAMPLES]
    rows = sum(len(h) for h in found.values())
    finding.setdefault("by_kind", {})[kind] = {"rows": rows, "by_split": {s: len(found.get(s, {})) for s in SPLIT_ORDER},
                                               "examples": examples}
    finding["rows"] = int(finding.get("rows", 0)) + rows
    if not rows:
        return
    finding["status"] = {CheckPolicy.DROP: "dropped"}.get(policy, policy.value)
    what = "repeat nearly an image of their own split" if check == "duplicates" else \
        "nearly repeat an image of an earlier split, which inflates eval/test metrics"
    eg = "; ".join(f"{e['row']} ~ {e['of']} ({e['hamming_bits']} bits)" for e in examples[:2])
    message = f"data.checks.{check}: {rows} images {what} (perceptual hash; e.g. {eg})"
    if policy is CheckPolicy.FAIL:
        out.violations.append(message)
    elif policy is CheckPolicy.WARN:
        out.warnings.append(message)
    elif policy is CheckPolicy.DROP:
        for split, hits in found.items():
            detail = {j: (kind, f"near-duplicate ({bits} bits apart) of {out.splits[e][SOURCE].iat[i]}")
                      for j, (e, i, bits) in hits.items()}
            drop_rows(cfg, out, split, detail)
        finding["dropped_rows"] = int(finding.get("dropped_rows", 0)) + rows


def exif_pii(cfg, out: ChecksOutcome, run_dir: Path | None) -> None:
    """EXIF GPS positions and camera serials: reported as PII; `redact` strips them from the training copy."""
    policy = cfg.data.checks.pii.policy
    if policy is CheckPolicy.OFF:
        out.findings["image_pii"] = {"policy": "off", "status": "off"}
        return
    hits = {n: {i: v for i, v in enumerate(f[EXIF]) if v} for n, f in out.splits.items()}
    kinds = Counter(k.strip() for h in hits.values() for v in h.values() for k in v.split(","))
    rows = sum(len(h) for h in hits.values())
    finding: dict[str, Any] = {
        "policy": policy.value, "status": "pass" if not rows else {CheckPolicy.DROP: "dropped",
                                                                   CheckPolicy.REDACT: "redacted"}.get(policy, policy.value),
        "rows": rows, "by_kind": dict(sorted(kinds.items())),
        "examples": [{"source": out.splits[n][SOURCE].iat[i], "found": v} for n, h in hits.items()
                     for i, v in h.items()][:EXAMPLES]}
    out.findings["image_pii"] = finding
    if not rows:
        return
    message = f"data.checks.pii: {rows} images carry personal metadata in EXIF ({dict(sorted(kinds.items()))})"
    if policy is CheckPolicy.FAIL:
        out.violations.append(message)
    elif policy is CheckPolicy.WARN:
        out.warnings.append(message + "; set data.checks.pii.policy: redact to train on copies without it")
    elif policy is CheckPolicy.DROP:
        for name, h in hits.items():
            drop_rows(cfg, out, name, {i: ("pii", f"EXIF: {v}") for i, v in h.items()})
    elif policy is CheckPolicy.REDACT:
        if run_dir is None:
            finding["note"] = "not redacted: no run dir to write the stripped copies to (validate only)"
            return
        folder = Path(run_dir) / REDACTED_DIR
        folder.mkdir(parents=True, exist_ok=True)
        for name, h in hits.items():
            frame = out.splits[name].copy()
            for i in h:
                frame.at[i, IMAGE] = str(strip_metadata(Path(frame[IMAGE].iat[i]), folder))
                frame.at[i, EXIF] = ""
            out.splits[name] = frame
        finding["note"] = (f"the training copies of these images ({folder}) carry no metadata; the source files are "
                           "unchanged")


def strip_metadata(path: Path, folder: Path) -> Path:
    """A PNG copy of the image's pixels alone (no EXIF, no other metadata), named by the source's content."""
    import hashlib

    from PIL import Image

    target = folder / f"{hashlib.sha256(str(path).encode()).hexdigest()[:24]}.png"
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    Image.frombytes("RGB", rgb.size, rgb.tobytes()).save(target, format="PNG")  # a new image: no info, no EXIF
    return target

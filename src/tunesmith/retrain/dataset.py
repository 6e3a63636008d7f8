"""Dataset versions for retraining: previous training data + new labels, deduplicated, leakage-checked, rehearsed.

    labels = collect_labels(cfg, db_url, "sentiment")          # every label source, validated
    version = build_dataset_version(cfg, "sentiment", labels, parent=previous_version_dir)

A version is a folder `<retrain.datasets_dir>/<name>/v<N>/` with train/eval/test/recent jsonl files and a
manifest.json (parent, counts, label sources, what was quarantined and why). The test split is frozen: every
version carries its parent's test (and eval) split unchanged, so versions are compared on the same rows.
`recent.jsonl` holds the newest share of the new labels: never trained on, it is the fresh slice of traffic the
challenger is judged on.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from tunesmith.config import Config
from tunesmith.data.fingerprint import text_key
from tunesmith.io import atomic_write_json, atomic_write_text

LabelSource = Callable[[str, str], list[dict]]
LABEL_KEYS = ("text", "label", "source", "labeled_by", "labeled_at", "request_id")
MANIFEST = "manifest.json"
LABELS_FILE = "labels.jsonl"  # provenance of the new labels in a version


def _review_source() -> LabelSource:
    """The human review queue's resolved labels (majority per item, reviewer and time kept)."""
    from tunesmith.review.store import reviewed_labels

    return reviewed_labels


def label_sources(cfg: Config) -> dict[str, LabelSource]:
    """The configured label sources (retrain.sources), each `fn(db_url, model_name) -> list[dict]`."""
    from tunesmith.monitoring.feedback import feedback_labels

    available: dict[str, LabelSource] = {"feedback": feedback_labels, "review": _review_source()}
    return {name: available[name] for name in cfg.retrain.sources}


def collect_labels(cfg: Config, db_url: str, name: str, sources: dict[str, LabelSource] | None = None) -> list[dict]:
    """Every label from every source, each checked for the contract's keys."""
    out = []
    for source_name, fn in (sources if sources is not None else label_sources(cfg)).items():
        for i, row in enumerate(fn(db_url, name)):
            missing = [k for k in LABEL_KEYS if k not in row]
            if missing:
                raise ValueError(f"label source {source_name!r} row {i}: missing keys {missing}; a source returns "
                                 f"dicts with {', '.join(LABEL_KEYS)}")
            out.append(row)
    return out


def label_key(row: dict) -> str:
    """Identity of one label (which text, which label, who, when): how versions know what they already hold."""
    blob = json.dumps([text_key(str(row["text"])), str(row["label"]), row["source"], row["labeled_by"],
                       str(row["labeled_at"])])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class DatasetVersion:
    version: int
    path: Path
    manifest: dict = field(default_factory=dict)

    def file(self, split: str) -> Path:
        return self.path / f"{split}.jsonl"


def versions_root(cfg: Config, name: str) -> Path:
    return Path(cfg.retrain.datasets_dir) / name


def latest_version(cfg: Config, name: str) -> DatasetVersion | None:
    root = versions_root(cfg, name)
    found = sorted((int(p.name[1:]), p) for p in root.glob("v*") if p.name[1:].isdigit() and (p / MANIFEST).is_file())
    if not found:
        return None
    number, path = found[-1]
    return DatasetVersion(number, path, json.loads((path / MANIFEST).read_text()))


def open_version(cfg: Config, name: str, number: int) -> DatasetVersion | None:
    path = versions_root(cfg, name) / f"v{number}"
    if not (path / MANIFEST).is_file():
        return None
    return DatasetVersion(number, path, json.loads((path / MANIFEST).read_text()))


def _read(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True, dtype={"text": str, "label": str})


def original_splits(cfg: Config) -> dict[str, pd.DataFrame]:
    """train/eval/test of the config's own data, split exactly as the first training run split it."""
    from tunesmith.data import prepare_data

    quiet = cfg.model_copy(deep=True)
    quiet.data.checks.label_issues.enabled = False  # a ranking for reviewers, not needed to rebuild the splits
    bundle = prepare_data(quiet, None)
    return {s: bundle.split(s)[["text", "label"]].astype(str).reset_index(drop=True) for s in ("train", "eval", "test")}


def parent_splits(cfg: Config, parent: DatasetVersion | None) -> dict[str, pd.DataFrame]:
    if parent is None:
        return original_splits(cfg)
    return {s: _read(parent.file(s)) for s in ("train", "eval", "test")}


def build_dataset_version(cfg: Config, name: str, labels: list[dict], *, parent: DatasetVersion | None,
                          trigger: str = "manual") -> DatasetVersion:
    """Write the next dataset version: rehearsed parent train + new labels; eval/test frozen; newest labels held out."""
    splits = parent_splits(cfg, parent)
    known_labels = [str(x) for x in (cfg.data.labels or sorted(splits["train"]["label"].unique()))]
    held_keys = {k: s for s in ("test", "eval") for k in map(text_key, splits[s]["text"])}
    already = set((parent.manifest.get("label_keys") if parent else None) or [])
    quarantine: list[dict] = []
    fresh: dict[str, dict] = {}  # text key -> the latest label for it
    seen: set[str] = set()  # every label looked at, kept or quarantined: the next version skips them all
    for row in sorted(labels, key=lambda r: str(r["labeled_at"])):
        key, tkey = label_key(row), text_key(str(row["text"]))
        if key in already:
            continue  # in an earlier version already
        seen.add(key)
        reason = None
        if str(row["label"]) not in known_labels:
            reason = ("unknown_label", f"label {row['label']!r} is not one of {known_labels}")
        elif tkey in held_keys:
            reason = ("leakage", f"the text is in the frozen {held_keys[tkey]} split")
        if reason:
            quarantine.append({"reason": reason[0], "detail": reason[1], **{k: str(row[k]) for k in LABEL_KEYS}})
            continue
        if tkey in fresh and fresh[tkey]["label"] != str(row["label"]):
            quarantine.append({"reason": "superseded", "detail": "a later label for the same text replaced it",
                               **{k: str(fresh[tkey][k]) for k in LABEL_KEYS}})
        fresh[tkey] = {**{k: row[k] for k in LABEL_KEYS}, "label": str(row["label"]), "text": str(row["text"]),
                       "key": key}
    new = sorted(fresh.values(), key=lambda r: str(r["labeled_at"]))
    old_train = splits["train"]
    old_keys = [text_key(t) for t in old_train["text"]]
    n_recent = int(round(len(new) * cfg.retrain.recent_holdout))
    old_set = set(old_keys)
    candidates = [r for r in new if text_key(r["text"]) not in old_set]  # relabels of old rows train
    recent = candidates[len(candidates) - n_recent:] if n_recent else []
    recent_keys = {r["key"] for r in recent}
    additions = [r for r in new if r["key"] not in recent_keys]
    relabeled = {text_key(r["text"]) for r in additions}
    keep = old_train[[k not in relabeled for k in old_keys]]
    rehearsal = keep.sample(frac=cfg.retrain.rehearsal, random_state=cfg.seed) if cfg.retrain.rehearsal < 1 else keep
    train = pd.concat([rehearsal[["text", "label"]],
                       pd.DataFrame([{"text": r["text"], "label": r["label"]} for r in additions],
                                    columns=["text", "label"])], ignore_index=True)
    latest = latest_version(cfg, name)
    number = (latest.version if latest else 0) + 1
    path = versions_root(cfg, name) / f"v{number}"
    path.mkdir(parents=True, exist_ok=True)
    for split, frame in (("train", train), ("eval", splits["eval"]), ("test", splits["test"]),
                         ("recent", pd.DataFrame([{"text": r["text"], "label": r["label"], "labeled_at":
                                                   str(r["labeled_at"]), "source": r["source"]} for r in recent],
                                                 columns=["text", "label", "labeled_at", "source"]))):
        atomic_write_text(path / f"{split}.jsonl", frame.to_json(orient="records", lines=True, force_ascii=False))
    manifest = {
        "name": name, "version": number, "parent": parent.version if parent else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "trigger": trigger,
        "labels": known_labels,
        "rows": {"train": len(train), "eval": len(splits["eval"]), "test": len(splits["test"]), "recent": len(recent)},
        "train_from_parent": len(rehearsal), "parent_train_rows": len(old_train), "rehearsal": cfg.retrain.rehearsal,
        "new_labels": len(new), "new_labels_trained": len(additions), "relabeled_parent_rows": len(old_train) - len(keep),
        "label_sources": dict(Counter(r["source"] for r in new)), "quarantined": len(quarantine),
        "quarantined_by_reason": dict(Counter(q["reason"] for q in quarantine)),
        "label_keys": sorted(already | seen),
    }
    # Provenance of every new label this version uses (who labeled it, when, from which source, which split).
    atomic_write_text(path / LABELS_FILE, "".join(
        json.dumps({**{k: (str(r[k]) if r[k] is not None else None) for k in LABEL_KEYS},
                    "split": "recent" if r["key"] in recent_keys else "train"}) + "\n" for r in new))
    if quarantine:
        atomic_write_text(path / "quarantine.jsonl", "".join(json.dumps(q) + "\n" for q in quarantine))
    atomic_write_json(path / MANIFEST, manifest)
    return DatasetVersion(number, path, manifest)


def count_new_labels(labels: list[dict], parent: DatasetVersion | None) -> int:
    """Labels not yet in `parent` (the champion's dataset version): what the new_labels trigger counts."""
    seen = set((parent.manifest.get("label_keys") if parent else None) or [])
    return len({label_key(r) for r in labels} - seen)

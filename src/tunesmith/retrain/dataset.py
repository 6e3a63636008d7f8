"""Dataset versions for retraining: previous training data + new labels, deduplicated, leakage-checked, rehearsed.

    labels = collect_labels(cfg, db_url, "sentiment")          # every label source, validated
    version = build_dataset_version(cfg, "sentiment", labels, parent=previous_version_dir)

A version is a folder `<retrain.datasets_dir>/<name>/v<N>/` with train/eval/test/recent jsonl files and a
manifest.json (parent, counts, label sources, what was quarantined and why). Rows are in the family's data-file
shape (`contracts.DatasetHooks`: {text, label} for the text families, {tokens, tags}, {query, positive},
{query, document, relevance}, {messages}); a new label is such a row (`row`) with its provenance. The test split is
frozen: every version carries its parent's test split unchanged, so versions are compared on the same rows. The
eval split is the parent's plus a seeded share of the new labels (`retrain.eval_holdout`), so checkpoint selection
and calibration see the new traffic too. `recent.jsonl` holds the newest share of the new labels: never trained
on, it is the fresh slice of traffic the challenger is judged on.
"""

from __future__ import annotations

import hashlib
import json
import random
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
PROVENANCE = ("source", "labeled_by", "labeled_at", "request_id")
LABEL_KEYS = ("text", "label", *PROVENANCE)  # what a classifier's label sources return (a row of text + label)
MANIFEST = "manifest.json"
LABELS_FILE = "labels.jsonl"  # provenance of the new labels in a version


def _review_source() -> LabelSource:
    """The human review queue's resolved labels (majority per item, reviewer and time kept)."""
    from tunesmith.review.store import reviewed_labels

    return reviewed_labels


def _feedback_source(cfg: Config) -> LabelSource:
    """Stored feedback as the rows it becomes (`FeedbackHooks.to_row`); one that trains nothing comes with why."""
    from tunesmith.families import get
    from tunesmith.monitoring.feedback import feedback_rows

    def source(db_url: str, name: str) -> list[dict]:
        rows, skipped = feedback_rows(db_url, name, get(cfg.task).feedback)
        return rows + [{"skip": s["reason"], "feedback_id": s["feedback_id"]} for s in skipped]

    return source


def label_sources(cfg: Config) -> dict[str, LabelSource]:
    """The configured label sources (retrain.sources), each `fn(db_url, model_name) -> list[dict]`."""
    available: dict[str, LabelSource] = {"feedback": _feedback_source(cfg), "review": _review_source()}
    return {name: available[name] for name in cfg.retrain.sources}


def collect_labels(cfg: Config, db_url: str, name: str, sources: dict[str, LabelSource] | None = None) -> list[dict]:
    """Every label from every source as {row, source, labeled_by, labeled_at, request_id} (a source may return
    text + label instead of a row); feedback that trains nothing comes as {skip: why}."""
    out = []
    for source_name, fn in (sources if sources is not None else label_sources(cfg)).items():
        for i, item in enumerate(fn(db_url, name)):
            if "skip" in item:
                out.append(item)
                continue
            keys = ("row", *PROVENANCE) if "row" in item else LABEL_KEYS
            missing = [k for k in keys if k not in item]
            if missing:
                raise ValueError(f"label source {source_name!r} row {i}: missing keys {missing}; a source returns "
                                 f"dicts with row (or text and label), {', '.join(PROVENANCE)}")
            row = item["row"] if "row" in item else {"text": item["text"], "label": item["label"]}
            shown = {k: row[k] for k in ("text", "label") if k in row}  # a text family's label reads as before
            out.append({"row": row, **shown, **{k: item[k] for k in PROVENANCE}})
    return out


def _row_of(item: dict) -> dict:
    return item["row"] if "row" in item else {"text": item["text"], "label": item["label"]}


def label_key(item: dict) -> str:
    """Identity of one label (which row, who, when): how versions know what they already hold. A text + label row
    keeps the identity it had before rows existed, so a version written then still knows its labels."""
    row = _row_of(item)
    if set(row) == {"text", "label"}:
        what = [text_key(str(row["text"])), str(row["label"])]
    else:
        what = [json.dumps(row, sort_keys=True, default=str)]
    blob = json.dumps([*what, item["source"], item["labeled_by"], str(item["labeled_at"])])
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


def read_rows(path: Path) -> list[dict]:
    """The rows of a version's jsonl file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_rows(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def _hooks(cfg: Config):
    from tunesmith.families import get

    hooks = get(cfg.task).dataset
    if hooks is None:
        raise ValueError(f"retrain does not keep dataset versions for {cfg.task} models yet")
    return hooks


def original_splits(cfg: Config) -> dict[str, pd.DataFrame]:
    """train/eval/test of the config's own data as rows (a frame of the family's columns), split exactly as the
    first training run split it."""
    from tunesmith.data import prepare_data

    quiet = cfg.model_copy(deep=True)
    quiet.data.checks.label_issues.enabled = False  # a ranking for reviewers, not needed to rebuild the splits
    bundle = prepare_data(quiet, None)
    hooks = _hooks(cfg)
    return {s: pd.DataFrame(hooks.raw_rows(bundle.split(s).reset_index(drop=True))) for s in ("train", "eval", "test")}


def parent_splits(cfg: Config, parent: DatasetVersion | None) -> dict[str, list[dict]]:
    if parent is None:
        return {s: _records(frame) for s, frame in original_splits(cfg).items()}
    return {s: read_rows(parent.file(s)) for s in ("train", "eval", "test")}


def _records(frame: pd.DataFrame) -> list[dict]:
    """A frame's rows as dicts, without the cells a row does not have (NaN where another row has the column)."""
    return [{k: v for k, v in row.items() if not (isinstance(v, float) and v != v)} for row in frame.to_dict("records")]


def _known_labels(cfg: Config, hooks, train: list[dict]) -> list[str]:
    if cfg.data.labels:
        return [str(x) for x in cfg.data.labels]
    return sorted({label for row in train for label in hooks.labels(row)})


def build_dataset_version(cfg: Config, name: str, labels: list[dict], *, parent: DatasetVersion | None,
                          trigger: str = "manual") -> DatasetVersion:
    """Write the next dataset version: rehearsed parent train + new labels; eval/test frozen; newest labels held out."""
    hooks = _hooks(cfg)
    splits = parent_splits(cfg, parent)
    known_labels = _known_labels(cfg, hooks, splits["train"])
    held_keys = {hooks.key(row): s for s in ("test", "eval") for row in splits[s]}
    already = set((parent.manifest.get("label_keys") if parent else None) or [])
    quarantine: list[dict] = [{"reason": "not_trainable", "detail": item["skip"], "feedback_id": item["feedback_id"]}
                              for item in labels if "skip" in item]
    fresh: dict[str, dict] = {}  # row key -> the latest label for it
    seen: set[str] = set()  # every label looked at, kept or quarantined: the next version skips them all
    for item in sorted((i for i in labels if "skip" not in i), key=lambda r: str(r["labeled_at"])):
        key, row = label_key(item), _row_of(item)
        if key in already:
            continue  # in an earlier version already
        seen.add(key)
        rkey = hooks.key(row)
        unknown = [x for x in hooks.labels(row) if known_labels and x not in known_labels]
        reason = None
        if unknown:
            reason = ("unknown_label", f"label {unknown[0]!r} is not one of {known_labels}")
        elif rkey in held_keys:
            reason = ("leakage", f"the row is in the frozen {held_keys[rkey]} split")
        if reason:
            quarantine.append({"reason": reason[0], "detail": reason[1], **_provenance(item)})
            continue
        if rkey in fresh and fresh[rkey]["row"] != row:
            quarantine.append({"reason": "superseded", "detail": "a later label for the same row replaced it",
                               **_provenance(fresh[rkey])})
        fresh[rkey] = {**item, "row": row, "key": key, "rkey": rkey}
    new = sorted(fresh.values(), key=lambda r: str(r["labeled_at"]))
    if hooks.conform is not None:  # e.g. a scored-pair model's accepted documents get a score like its pairs
        for r, row in zip(new, hooks.conform([r["row"] for r in new], splits["train"]), strict=True):
            r["row"] = row
    old_train = splits["train"]
    old_keys = [hooks.key(row) for row in old_train]
    n_recent = int(round(len(new) * cfg.retrain.recent_holdout))
    old_set = set(old_keys)
    candidates = [r for r in new if r["rkey"] not in old_set]  # relabels of old rows train
    recent = candidates[len(candidates) - n_recent:] if n_recent else []
    recent_keys = {r["key"] for r in recent}
    rest = [r for r in candidates if r["key"] not in recent_keys]
    near = near_frozen(cfg, rest, splits)  # a paraphrase of a frozen eval/test row never trains
    leaked = {k for k, s in near.items() if s == "test"}
    quarantine += [{"reason": "leakage", "detail": "a near-duplicate of a row in the frozen test split",
                    **_provenance(r)} for r in rest if r["key"] in leaked]
    evaluated = eval_holdout(cfg, hooks, [r for r in rest if r["key"] not in leaked],
                             forced={k for k, s in near.items() if s == "eval"})
    eval_keys = {r["key"] for r in evaluated}
    held = recent_keys | eval_keys | leaked
    additions = [r for r in new if r["key"] not in held]
    relabeled = {r["rkey"] for r in additions}
    keep = pd.DataFrame({"i": [i for i, k in enumerate(old_keys) if k not in relabeled]})
    if cfg.retrain.rehearsal < 1:
        keep = keep.sample(frac=cfg.retrain.rehearsal, random_state=cfg.seed)
    rehearsal = [old_train[i] for i in keep["i"]]
    train = rehearsal + [r["row"] for r in additions]
    latest = latest_version(cfg, name)
    number = (latest.version if latest else 0) + 1
    path = versions_root(cfg, name) / f"v{number}"
    path.mkdir(parents=True, exist_ok=True)
    eval_rows = splits["eval"] + [r["row"] for r in evaluated]
    for split, rows in (("train", train), ("eval", eval_rows), ("test", splits["test"]),
                        ("recent", [{**r["row"], "labeled_at": str(r["labeled_at"]), "source": r["source"]}
                                    for r in recent])):
        _write_rows(path / f"{split}.jsonl", rows)
    manifest = {
        "name": name, "version": number, "parent": parent.version if parent else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "trigger": trigger,
        "family": cfg.task, "labels": known_labels,
        "rows": {"train": len(train), "eval": len(eval_rows), "test": len(splits["test"]), "recent": len(recent)},
        "train_from_parent": len(rehearsal), "parent_train_rows": len(old_train), "rehearsal": cfg.retrain.rehearsal,
        "new_labels": len(new), "new_labels_trained": len(additions), "new_labels_eval": len(evaluated),
        "relabeled_parent_rows": len(old_train) - sum(k not in relabeled for k in old_keys),
        "label_sources": dict(Counter(r["source"] for r in new)), "quarantined": len(quarantine),
        "quarantined_by_reason": dict(Counter(q["reason"] for q in quarantine)),
        "label_keys": sorted(already | seen),
    }
    # Provenance of every new label this version uses (who labeled it, when, from which source, which split).
    atomic_write_text(path / LABELS_FILE, "".join(
        json.dumps({**r["row"], **_provenance(r), "split": _split_of(r["key"], recent_keys, eval_keys)},
                   ensure_ascii=False, default=str) + "\n" for r in new))
    if quarantine:
        atomic_write_text(path / "quarantine.jsonl", "".join(json.dumps(q, default=str) + "\n" for q in quarantine))
    atomic_write_json(path / MANIFEST, manifest)
    return DatasetVersion(number, path, manifest)


def eval_holdout(cfg: Config, hooks, rows: list[dict], forced: set[str] = frozenset()) -> list[dict]:
    """About `retrain.eval_holdout` of the new labels that are neither recent nor relabels of training rows, for the
    eval split: whole groups (`DatasetHooks.group`) in a seeded order, never every row (some new rows must train).
    Selecting checkpoints and fitting the temperature on the old eval rows alone would keep a model that has not
    learnt the new traffic: it already scores the old rows perfectly after its first epoch. The groups of `forced`
    label keys (paraphrases of a frozen eval row) join the eval split whatever the share."""
    target = int(round(len(rows) * cfg.retrain.eval_holdout))
    if not target and not forced:
        return []
    group = hooks.group or hooks.key
    groups: dict[str, list[dict]] = {}
    for r, g in zip(rows, _near_merged([group(r["row"]) for r in rows], rows, cfg), strict=True):
        groups.setdefault(g, []).append(r)
    chosen: list[dict] = []
    pinned = sorted(g for g, members in groups.items() if any(r["key"] in forced for r in members))
    for g in pinned:
        chosen.extend(groups.pop(g))
    order = sorted(groups)
    random.Random(cfg.seed).shuffle(order)
    for g in order:
        if len(chosen) >= target:
            break
        if len(chosen) + len(groups[g]) < len(rows):
            chosen.extend(groups[g])
    return chosen


def _row_text(row: dict) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)


def near_frozen(cfg: Config, rows: list[dict], splits: dict[str, list[dict]]) -> dict[str, str]:
    """Label key -> "test" or "eval" for the new rows that nearly repeat a row of the frozen test (first) or eval
    split (data.checks.duplicates.near's settings, as the leakage gate will judge them): users ask the questions of
    the test set again in other words, and such a row in train or eval would inflate the test metric."""
    from tunesmith.data.dedup import near_duplicate_pairs

    near = cfg.data.checks.duplicates.near
    if not (near.enabled and cfg.data.checks.leakage.near) or not rows:
        return {}
    frozen = [(s, row) for s in ("test", "eval") for row in splits[s]]
    texts = [_row_text(row) for _, row in frozen] + [_row_text(r["row"]) for r in rows]
    found = near_duplicate_pairs(texts, threshold=near.threshold, num_perm=near.num_perm, ngram=near.ngram,
                                 seed=near.seed)
    out: dict[str, str] = {}
    for i, j in found.pairs:
        i, j = sorted((int(i), int(j)))
        if i < len(frozen) <= j:
            key = rows[j - len(frozen)]["key"]
            if out.get(key) != "test":
                out[key] = frozen[i][0]
    return out


def _near_merged(keys: list[str], rows: list[dict], cfg: Config) -> list[str]:
    """Each row's group, with groups holding near-duplicate rows merged (data.checks.duplicates.near's settings):
    paraphrases of one question with one answer would otherwise sit in eval and train at once, which the leakage
    gate refuses."""
    from tunesmith.data.dedup import near_duplicate_pairs

    near = cfg.data.checks.duplicates.near
    parent = {k: k for k in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    if near.enabled and len(rows) > 1:
        texts = [_row_text(r["row"]) for r in rows]
        found = near_duplicate_pairs(texts, threshold=near.threshold, num_perm=near.num_perm, ngram=near.ngram,
                                     seed=near.seed)
        for i, j in found.pairs:
            parent[root(keys[int(i)])] = root(keys[int(j)])
    return [root(k) for k in keys]


def _split_of(key: str, recent: set[str], evaluated: set[str]) -> str:
    return "recent" if key in recent else "eval" if key in evaluated else "train"


def _provenance(item: dict) -> dict:
    row = item.get("row") or {}
    shown = {k: str(row[k]) for k in ("text", "label") if k in row} or {"row": json.dumps(row, default=str)[:500]}
    return {**shown, **{k: (str(item[k]) if item.get(k) is not None else None) for k in PROVENANCE}}


def count_new_labels(labels: list[dict], parent: DatasetVersion | None) -> int:
    """Labels not yet in `parent` (the champion's dataset version): what the new_labels trigger counts."""
    seen = set((parent.manifest.get("label_keys") if parent else None) or [])
    return len({label_key(r) for r in labels if "skip" not in r} - seen)

"""Fill the review queue: low-confidence predictions, shadow disagreements and cleanlab-flagged training rows.

    report = enqueue(url, "sentiment", threshold=0.6, label_issues_file=run_dir / "label_issues.jsonl")

Idempotent: an item is keyed by (model, request id or file:line, text), so re-running adds only what is new.
After adding, every pending item (nobody labeled it yet) is re-ordered by active learning (ordering.py).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.monitoring.predictions import item_positions, read_predictions
from tunesmith.review import store
from tunesmith.review.ordering import Embed, Strategy, mmr_order, uncertainty
from tunesmith.review.store import ReviewItem, Source
from tunesmith.serving.router import Role


class ReviewInputError(ValueError):
    """Bad input to the review queue (a malformed label_issues.jsonl line), naming file:line."""


SERVED_ROLES = (Role.CHAMPION.value, Role.CHALLENGER.value)


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def sampled(request_id: str, idx: int, share: float) -> bool:
    """Whether a served answer is in the random share: a hash of (request id, position), so the same ones every
    run and independent of what the model answered."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{request_id}\x1f{idx}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def with_positions(rows: list[dict]) -> list[dict]:
    """Each row with `idx`, its position in its request (how feedback names an item of a batch)."""
    return [{**row, "idx": idx} for row, idx in zip(rows, item_positions(rows), strict=True)]


def family_of_rows(rows: list[dict], task: str | None):
    """The model's family: `task` when given, else the family whose answers most of the served rows are."""
    from tunesmith.families import all_families, get

    if task is not None:
        return get(task)
    votes: Counter = Counter()
    for row in rows:
        for fam in all_families():
            if fam.drift is not None and fam.review is not None and fam.drift.accepts(row):
                votes[fam.kind] += 1
                break
    return get(votes.most_common(1)[0][0]) if votes else get("classification")


def from_family(rows: list[dict], model: str, fam, *, threshold: float, sources: set[Source], random_share: float,
                feedback: dict[tuple[str, int], Any], labels: list[str] | None) -> tuple[list[ReviewItem], Counter]:
    """Review items from another family's served answers (`ReviewHooks.items`): those whose confidence (1 -
    the family's uncertainty) is below `threshold`, and a random share of the rest."""
    counts: Counter = Counter()
    served = [r for r in with_positions(rows) if r["role"] in SERVED_ROLES and fam.drift.accepts(r)]
    counts["not_reviewable"] += sum(1 for r in rows if r["role"] in SERVED_ROLES) - len(served)
    for r in served:
        r["feedback"] = feedback.get((r["request_id"], r["idx"]))
    found = []
    summary = fam.feedback.summary
    for cand in fam.review.items(served, labels):
        row, u = served[cand["index"]], float(cand["uncertainty"])
        abstained = (isinstance(row["output"], dict) and row["output"].get("abstained")) or \
            "confidence_floor:abstained" in (row.get("filters") or "")  # serving.filters (an extractor's entities)
        if Source.LOW_CONFIDENCE in sources and (abstained or 1.0 - u < threshold):
            source = Source.LOW_CONFIDENCE
        elif Source.RANDOM in sources and sampled(row["request_id"], row["idx"], random_share):
            source = Source.RANDOM
        else:
            continue
        counts[source.value] += 1
        guess = cand["guess"]
        context = {**cand["context"], "family": fam.kind, "widget": fam.review.widget, "guess": guess,
                   "input": row["input"], "output": row["output"], "idx": row["idx"], "role": row["role"]}
        found.append(ReviewItem(model=model, source=source, text=str(cand["text"]),
                                guess=str(summary(guess))[:200] if guess is not None else None,
                                confidence=1.0 - u, context=context, request_id=row["request_id"],
                                model_version=row["version"], uncertainty=u))
    return found, counts


def from_predictions(rows: list[dict], model: str, *, threshold: float, strategy: Strategy,
                     sources: set[Source], random_share: float = 0.0) -> tuple[list[ReviewItem], Counter]:
    """Review items from a classifier's prediction-log rows; the Counter says what was found and what could not
    be reviewed."""
    counts: Counter = Counter()
    found: list[ReviewItem] = []
    shadows: dict[tuple[str, str], dict] = {}
    served: dict[tuple[str, str], dict] = {}
    for row in with_positions(rows):
        out, text = row["output"], _text(row["input"])
        if not (isinstance(out, dict) and "label" in out and text is not None):
            counts["not_reviewable"] += 1  # another family's answer: the model is a classifier
            continue
        key = (row["request_id"], text)
        if row["role"] == Role.SHADOW.value:
            shadows[key] = row
        elif row["role"] in SERVED_ROLES:
            served[key] = row
    for key, row in served.items():
        out = row["output"]
        scores = out.get("scores") if isinstance(out.get("scores"), dict) else None
        conf = row["confidence"] if row["confidence"] is not None else out.get("score")
        u = uncertainty(scores, conf, strategy)
        shadow = shadows.get(key)
        base = {"model": model, "text": key[1], "guess": str(out["label"]), "confidence": conf, "scores": scores,
                "request_id": row["request_id"], "model_version": row["version"]}
        if Source.SHADOW_DISAGREEMENT in sources and shadow is not None and shadow["output"]["label"] != out["label"]:
            counts[Source.SHADOW_DISAGREEMENT.value] += 1
            # Two models disagreeing is evidence on its own: such an item ranks in the upper half at least.
            context = {"role": row["role"], "shadow_label": str(shadow["output"]["label"]),
                       "shadow_confidence": shadow["confidence"], "shadow_version": shadow["version"]}
            found.append(ReviewItem(**base, source=Source.SHADOW_DISAGREEMENT, context=context,
                                    uncertainty=0.5 + 0.5 * u))
        elif Source.LOW_CONFIDENCE in sources and (out.get("abstained") or (conf is not None and conf < threshold)):
            counts[Source.LOW_CONFIDENCE.value] += 1
            found.append(ReviewItem(**base, source=Source.LOW_CONFIDENCE, context={"role": row["role"]},
                                    uncertainty=u))
        elif Source.RANDOM in sources and sampled(row["request_id"], row["idx"], random_share):
            counts[Source.RANDOM.value] += 1
            found.append(ReviewItem(**base, source=Source.RANDOM, context={"role": row["role"]}, uncertainty=u))
    counts["shadow_unpaired"] = sum(1 for k in shadows if k not in served)
    return found, counts


def from_label_issues(path: Path, model: str) -> list[ReviewItem]:
    """Review items from the data gates' label_issues.jsonl (one flagged training row per line)."""
    found = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            flag = json.loads(line)
            text, given, suggested = flag["text"], flag["given"], flag["suggested"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ReviewInputError(f"{path}:{n}: not a label-issue record ({exc}); expected the data gates' "
                                   "label_issues.jsonl (text, given, suggested, given_label_probability, source)") from None
        p_given = flag.get("given_label_probability")
        context = {"given": str(given), "given_label_probability": p_given, "row": flag.get("source"),
                   "split": flag.get("split")}
        found.append(ReviewItem(model=model, source=Source.LABEL_ISSUE, text=str(text), guess=str(suggested),
                                confidence=None, context=context,
                                uncertainty=1.0 - float(p_given) if p_given is not None else 0.5))
    return found


def reorder(url: str, model: str, *, diversity: float, embed: Embed | None) -> int:
    """Re-rank the pending items (nobody labeled them yet) by uncertainty + MMR diversity; returns how many."""
    pending = store.list_items(url, model, pending_only=True)
    if not pending:
        return 0
    emb = np.asarray(embed([p["text"] for p in pending])) if embed is not None and diversity > 0 else None
    order = mmr_order(np.array([p["uncertainty"] for p in pending]), emb, diversity=diversity)
    labeled = len(store.list_items(url, model)) - len(pending)
    # Labeled items keep their old ranks; pending ones follow them, so a reviewer's queue never reshuffles behind.
    store.set_priorities(url, [pending[i]["id"] for i in order], start=labeled)
    return len(pending)


def enqueue(url: str, model: str, *, threshold: float = 0.6, sources: list[Source] | None = None,
            label_issues_file: Path | None = None, strategy: Strategy = Strategy.MARGIN, diversity: float = 0.3,
            embed: Embed | None = None, task: str | None = None, random_share: float = 0.05,
            labels: list[str] | None = None) -> dict:
    """Add new review items for `model` from the prediction log (and a label_issues.jsonl), then re-rank.

    `task`: the model's family (default: the family most of its served answers belong to); a classifier's
    answers take the label path (shadow disagreements, margin), another family's its `ReviewHooks.items`."""
    wanted = set(sources or list(Source))
    counts: Counter = Counter()
    new: list[ReviewItem] = []
    if wanted & {Source.LOW_CONFIDENCE, Source.SHADOW_DISAGREEMENT, Source.RANDOM}:
        rows = read_predictions(url, model=model)
        counts["predictions_read"] = len(rows)
        fam = family_of_rows(rows, task)
        if fam.review is not None and fam.review.items is not None:
            found, c = from_family(rows, model, fam, threshold=threshold, sources=wanted, random_share=random_share,
                                   feedback=_latest_feedback(url, model), labels=labels)
        else:
            found, c = from_predictions(rows, model, threshold=threshold, strategy=strategy, sources=wanted,
                                        random_share=random_share)
        new += found
        counts.update(c)
        counts["family"] = fam.kind
    if Source.LABEL_ISSUE in wanted and label_issues_file is not None:
        flagged = from_label_issues(Path(label_issues_file), model)
        counts[Source.LABEL_ISSUE.value] += len(flagged)
        new += flagged
    added, present = store.add_items(url, new)
    # Nothing new: the stored order stands (labeling only removes items from it), so a cron re-run stays cheap.
    pending = reorder(url, model, diversity=diversity, embed=embed) if added else len(
        store.list_items(url, model, pending_only=True))
    return {**dict(counts), "added": added, "already_queued": present, "pending": pending,
            "label_issues_file": str(label_issues_file) if label_issues_file else None}


def _latest_feedback(url: str, model: str) -> dict[tuple[str, int], Any]:
    """(request id, item index) -> the latest stored feedback value (what a chat answer's thumbs were)."""
    from tunesmith.monitoring.feedback import read_feedback

    out = {}
    for r in read_feedback(url, model):
        if r["request_id"]:
            out[(r["request_id"], r["idx"])] = json.loads(r["value"]) if r["value"] is not None else r["label"]
    return out


def newest_label_issues(runs_root: Path) -> Path | None:
    """The newest run's label_issues.jsonl under a config's runs folder (written with data.checks.label_issues.review_file)."""
    files = sorted(Path(runs_root).glob("*/label_issues.jsonl"))
    return files[-1] if files else None

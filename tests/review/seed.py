"""A prediction log and a label_issues.jsonl with known review candidates, for the review tests."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.monitoring.predictions import PredictionLog

MODEL = "sentiment"
LABELS = ["neg", "neu", "pos"]


def _out(label: str, p: float) -> dict:
    rest = [lab for lab in LABELS if lab != label]
    scores = {label: p, rest[0]: round((1 - p) * 0.7, 6), rest[1]: round((1 - p) * 0.3, 6)}
    return {"label": label, "score": p, "scores": scores}


# (request id, text, champion label, confidence, shadow label or None)
PREDICTIONS = [
    ("r1", "the plot was fine I guess", "pos", 0.41, None),          # low confidence
    ("r2", "a masterpiece of modern cinema", "pos", 0.97, None),     # confident: not queued
    ("r3", "not bad, not great either", "neu", 0.55, None),          # low confidence
    ("r4", "I walked out after an hour", "neg", 0.92, "neu"),        # shadow disagrees
    ("r5", "loved every minute", "pos", 0.95, "pos"),                 # shadow agrees: not queued
    ("r6", "the plot was fine I guess, really", "pos", 0.43, None),  # low confidence, near-copy of r1
]

LABEL_ISSUES = [
    {"source": "train.jsonl:7", "split": "train", "given": "pos", "suggested": "neg",
     "given_label_probability": 0.04, "text": "worst film of the year"},
    {"source": "train.jsonl:19", "split": "train", "given": "neg", "suggested": "pos",
     "given_label_probability": 0.2, "text": "charming and warm"},
]


def seed(url: str, tmp: Path) -> Path:
    """Log PREDICTIONS (champion + shadow rows, one regression row) into `url`; write LABEL_ISSUES; return its path."""
    log = PredictionLog(url)
    for rid, text, label, conf, shadow in PREDICTIONS:
        log.record(request_id=rid, model=MODEL, version=3, role="champion", route="/v1/classify", input=text,
                   output=_out(label, conf), confidence=conf, latency_ms=5.0, force=True)
        if shadow is not None:
            p = 0.6 if shadow != label else 0.9
            log.record(request_id=rid, model=MODEL, version=4, role="shadow", route="/v1/classify", input=text,
                       output=_out(shadow, p), confidence=p, latency_ms=6.0, force=True)
    # a score from a regression route has no label to review: counted, not queued
    log.record(request_id="r7", model=MODEL, version=3, role="champion", route="/v1/score", input="some text",
               output=0.3, confidence=None, latency_ms=4.0, force=True)
    log.close()
    path = tmp / "label_issues.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in LABEL_ISSUES), encoding="utf-8")
    return path

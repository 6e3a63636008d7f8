"""tunesmith review stage: a human review queue over the prediction log's database, and its web page.

    tunesmith review enqueue --model sentiment -c tunesmith.yaml   # low confidence, shadow disagreements, label issues
    tunesmith review --model sentiment -c tunesmith.yaml           # the page, one item at a time, keyboard shortcuts
    tunesmith review export --model sentiment -o reviewed.jsonl    # resolved labels for the next dataset version

See store.py (tables, label resolution), enqueue.py, ordering.py (active learning), web.py, agreement.py.
"""

from __future__ import annotations

from tunesmith.review.store import Action, ReviewItem, Source, reviewed_labels

__all__ = ["Action", "ReviewItem", "Source", "reviewed_labels"]

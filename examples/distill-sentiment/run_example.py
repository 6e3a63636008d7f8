"""Distil the demo's sentiment model into a 2-layer student, with unlabeled reviews labelled by the teacher.

    python examples/distill-sentiment/run_example.py

1. The teacher: `sentiment@challenger` from the registry in the current folder (what `make demo` registers); when
   there is none, the demo config is run first (about 3.5 minutes on 2 cores).
2. The unlabeled pool: the corpus's reviews without their labels (plot summaries left out); the ones already in
   the demo's sample are skipped by tunesmith itself (counted as `in_a_split`), so only unseen reviews are added.
3. `tunesmith run examples/distill-sentiment/config.yaml` with that pool: report.html's "Distillation" section
   compares teacher, student and the student trained without KD on quality, latency and size.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def tunesmith(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tunesmith.cli", *args], check=True)


def main() -> int:
    import pandas as pd

    from tunesmith.config import load_config
    from tunesmith.registry import model_dir_for

    cfg = load_config(HERE / "config.yaml")
    if model_dir_for("sentiment", "challenger", registry=cfg.registry) is None:
        print("no sentiment@challenger registered here yet: training the teacher with the demo config")
        tunesmith("run", str(ROOT / "examples/sentiment/config.yaml"))
    pool = Path(".tunesmith/distill-sentiment/unlabeled.csv")
    pool.parent.mkdir(parents=True, exist_ok=True)
    corpus = pd.read_csv(cfg.resolve_path(cfg.data.path))
    reviews = corpus[corpus["category"] != "plot"]["text"]
    reviews.to_frame("text").to_csv(pool, index=False)  # no labels: the teacher provides them
    print(f"unlabeled pool: {len(reviews)} reviews -> {pool}")
    tunesmith("run", str(HERE / "config.yaml"), "--set", f"method.distill.unlabeled={pool.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

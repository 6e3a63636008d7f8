"""Data-gate scale: `prepare_data` (schema + exact dups + near-dups + regex PII) on 100k and 1M short-text rows.

    make bench        # or: python benchmarks/validate_scale.py --small 100000 --large 1000000

Generates its own data (Zipf-distributed words, 8-30 per text, ~1% exact duplicates, ~1% 5%-edited
near-duplicates, ~0.5% rows with an e-mail/phone/card number) as parquet, then runs the data stage on each size
in its own process (so each peak RSS is its own) with label issues and Presidio off: those are not part of
the scale target. Prints both times, the ratio time(large)/time(small) (target <= 12 for 10x the rows: near
linear), the peak RSS of each run, and writes a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "ge", "hu", "ji", "bo", "fe"]
PII = ["write to jane.doe{i}@example.org", "call +31 6 1234 {i:04d}", "card 4111 1111 1111 1111"]


def make_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """n short texts with planted duplicates, near-duplicates and PII (vectorized: generating is not what we time)."""
    rng = np.random.default_rng(seed)
    vocab = np.array(sorted({"".join(rng.choice(SYLLABLES, size=k)) for k in rng.integers(2, 5, size=40_000)}))
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    lengths = rng.integers(8, 31, size=n)
    words = rng.choice(vocab, size=int(lengths.sum()), p=p / p.sum())
    cuts = np.cumsum(lengths)[:-1]
    texts = [" ".join(w) for w in np.split(words, cuts)]
    labels = rng.choice(["pos", "neg", "neutral"], size=n)
    dup = rng.choice(n, size=n // 100, replace=False)
    for i in dup[: len(dup) // 2]:  # exact copies of another row
        texts[i] = texts[(i + 1) % n]
    for i in dup[len(dup) // 2:]:  # one word changed
        w = texts[(i + 1) % n].split()
        w[len(w) // 2] = "edited"
        texts[i] = " ".join(w)
    for k, i in enumerate(rng.choice(n, size=n // 200, replace=False)):
        texts[i] += " " + PII[k % len(PII)].format(i=k % 10_000)
    return pd.DataFrame({"text": texts, "label": labels})


def run_one(path: str, out: str) -> None:
    """Child process: the data stage on one file; writes seconds, rows and peak RSS."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tunesmith.config import config_from_dict
    from tunesmith.data import prepare_data

    cfg = config_from_dict({"name": "scale", "data": {"path": path, "checks": {
        "pii": {"policy": "warn", "presidio": "off"}, "duplicates": {"policy": "warn"},
        "leakage": {"policy": "warn"}, "label_issues": {"enabled": False}}}})
    t0 = time.perf_counter()
    bundle = prepare_data(cfg, None)
    seconds = time.perf_counter() - t0
    checks = bundle.report.checks
    result = {"seconds": round(seconds, 2), "rows": bundle.report.rows_read,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "duplicate_rows": checks["duplicates"]["rows"], "pii_rows": checks["pii"]["rows_with_pii"],
              "near_lsh": checks["duplicates"].get("near_lsh")}
    Path(out).write_text(json.dumps(result))


def measure(n: int, work: Path) -> dict:
    path = work / f"rows_{n}.parquet"
    make_rows(n).to_parquet(path, index=False)
    out = work / f"result_{n}.json"
    subprocess.run([sys.executable, __file__, "--child", str(path), str(out)], check=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--out", default="benchmarks/results/validate_scale.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        small, large = measure(args.small, Path(tmp)), measure(args.large, Path(tmp))
    ratio = large["seconds"] / small["seconds"]
    summary = {"small": small, "large": large, "rows_ratio": args.large / args.small, "time_ratio": round(ratio, 2),
               "cpu_count": os.cpu_count(), "target": "large < 600 s and time_ratio <= 12 for 10x rows"}
    print(f"validate {args.small} rows: {small['seconds']:.1f}s (peak RSS {small['peak_rss_mb']:.0f} MB)")
    print(f"validate {args.large} rows: {large['seconds']:.1f}s (peak RSS {large['peak_rss_mb']:.0f} MB)")
    print(f"validate_scale_time: ratio {ratio:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

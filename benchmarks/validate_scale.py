"""Data-gate scale: `tunesmith validate`'s data stage (schema + exact dups + near-dups + regex PII) at 100k, 1M, 3M rows.

    make bench        # or: python benchmarks/validate_scale.py --sizes 100000 1000000 3000000

Generates its own data (Zipf-distributed words, 8-30 per text, ~1% exact duplicates, ~1% 5%-edited
near-duplicates, ~0.5% rows with an e-mail/phone/card number) as parquet, then runs the data stage on each size
in its own process (so each peak RSS, ru_maxrss, is its own) with label issues and Presidio off: those are not
part of the scale target. The stage reads in batches (data.batch_rows, default 20,000) and writes the splits as
parquet, as `tunesmith validate` does. With --whole it also runs the whole-file path (data.batch_rows: 0) at
the smallest size: the baseline, in the same run. Targets: peak RSS <= 1 GB at 1M rows, and time linear in rows
(seconds per row at the largest size <= 1.5x that at the smallest). Prints rows/s and peak RSS per size, the
verdicts, the CPU, and writes a JSON file.
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


def run_one(path: str, out: str, batch_rows: str) -> None:
    """Child process: the data stage on one file; writes seconds, rows and peak RSS."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tunesmith.config import config_from_dict
    from tunesmith.data import prepare_data

    cfg = config_from_dict({"name": "scale", "data": {"path": path, "batch_rows": int(batch_rows), "checks": {
        "pii": {"policy": "warn", "presidio": "off"}, "duplicates": {"policy": "warn"},
        "leakage": {"policy": "warn"}, "label_issues": {"enabled": False}}}})
    with tempfile.TemporaryDirectory() as run_dir:
        t0 = time.perf_counter()
        bundle = prepare_data(cfg, Path(run_dir), load_frames=False)  # what `tunesmith validate` does
        seconds = time.perf_counter() - t0
    checks = bundle.report.checks
    result = {"seconds": round(seconds, 2), "rows": bundle.report.rows_read, "batch_rows": int(batch_rows),
              "rows_per_s": round(bundle.report.rows_read / seconds),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "duplicate_rows": checks["duplicates"]["rows"], "pii_rows": checks["pii"]["rows_with_pii"],
              "near_lsh": checks["duplicates"].get("near_lsh")}
    Path(out).write_text(json.dumps(result))


def measure(n: int, work: Path, batch_rows: int) -> dict:
    path = work / f"rows_{n}.parquet"
    if not path.exists():
        make_rows(n).to_parquet(path, index=False)
    out = work / f"result_{n}_{batch_rows}.json"
    subprocess.run([sys.executable, __file__, "--child", str(path), str(out), str(batch_rows)], check=True)
    return json.loads(out.read_text())


def cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    return f"{model}; amx={'amx_tile' in flags} avx512_bf16={'avx512_bf16' in flags}; {os.cpu_count()} cores"


RSS_TARGET_MB, RSS_AT = 1024, 1_000_000
LINEAR_SLACK = 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000])
    parser.add_argument("--batch-rows", type=int, default=20_000)
    parser.add_argument("--whole", action="store_true", help="also run the whole-file path at the smallest size")
    parser.add_argument("--out", default="benchmarks/results/validate_scale.json")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(*args.child)
        return
    sizes = sorted(args.sizes)
    print(f"cpu: {cpu()} (a shared, loaded box: timings are indicative)")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.whole:
            results[f"whole_{sizes[0]}"] = r = measure(sizes[0], Path(tmp), 0)
            print(f"validate {sizes[0]:>9,} rows, whole file: {r['seconds']:7.1f}s {r['rows_per_s']:>8,} rows/s "
                  f"peak RSS {r['peak_rss_mb']:6.0f} MB")
        for n in sizes:
            results[str(n)] = r = measure(n, Path(tmp), args.batch_rows)
            print(f"validate {n:>9,} rows, batches of {args.batch_rows:,}: {r['seconds']:7.1f}s {r['rows_per_s']:>8,} "
                  f"rows/s peak RSS {r['peak_rss_mb']:6.0f} MB", flush=True)
    small, large = results[str(sizes[0])], results[str(sizes[-1])]
    per_row = (large["seconds"] / large["rows"]) / (small["seconds"] / small["rows"])
    rss = results.get(str(RSS_AT))
    rss_met = rss is not None and rss["peak_rss_mb"] <= RSS_TARGET_MB
    linear_met = per_row <= LINEAR_SLACK
    summary = {"results": results, "cpu": cpu(), "time_per_row_ratio": round(per_row, 2),
               "targets": {"peak_rss_mb_at_1M": RSS_TARGET_MB, "time_per_row_ratio": LINEAR_SLACK},
               "rss_met": rss_met, "linear_met": linear_met}
    shown = f"{rss['peak_rss_mb']:.0f} MB" if rss else "not measured (1M rows not in --sizes)"
    print(f"validate_scale_rss_1m: {shown} (target <= {RSS_TARGET_MB} MB): {'met' if rss_met else 'NOT MET'}")
    print(f"validate_scale_time_per_row: ratio {per_row:.2f} ({sizes[-1]:,} vs {sizes[0]:,} rows; target <= "
          f"{LINEAR_SLACK}): {'met' if linear_met else 'NOT MET'}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

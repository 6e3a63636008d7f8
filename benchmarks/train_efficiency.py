"""Training compute efficiency: achieved training FLOP/s as a fraction of this machine's measured GEMM peak.

    make bench        # or: python benchmarks/train_efficiency.py [--steps 8] [--batch 16]

1. The peak: the best GFLOP/s of torch.matmul on square bf16 and fp32 matrices (sizes 1024-4096, warm-up, best of
   5), on this machine, in this process, with the same thread count as training.
2. Training: builtin:smollm2-135m-instruct (SmolLM2-135M) through tunesmith's own training path (`tunesmith.training
   .train`, so the Trainer, packing and loss are the product's), one configuration after another: fp32 vs bf16,
   gradient checkpointing, gradient accumulation (same global batch), torch.compile, LoRA. A callback times each
   optimizer step (step end to step end, so data loading and logging count) and reads the Trainer's token counter.
3. FLOPs: `torch.utils.flop_counter.FlopCounterMode` counts the matmul/attention FLOPs of one whole optimizer step
   of the configuration without checkpointing (model FLOPs: a checkpointed step recomputes its forward, which is
   extra work, not extra model FLOPs); FLOPs per token x tokens/s = achieved FLOP/s. The analytic 6 x params x
   tokens estimate is printed beside it as a cross-check.

Prints `train_efficiency_<config>: <fraction of the bf16 (or fp32) GEMM peak>` lines and writes a JSON file. The
issue's target is >= 0.40 of the bf16 peak for the causal-LM benchmark model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from train_causal_lm import MODEL, Bundle  # noqa: E402  (the sibling benchmark: same model, same env setup)

DATA = Path(__file__).resolve().parent.parent / "examples/support-chat/chats.jsonl"


def gemm_peak(dtype: torch.dtype, sizes=(1024, 2048, 4096), repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n @ n x n matmul over the sizes (2 n^3 FLOPs each)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.matmul(a, b)  # warm-up: oneDNN picks its kernel
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def load_rows(n: int) -> list[list[dict]]:
    rows = [json.loads(line)["messages"] for line in DATA.read_text(encoding="utf-8").splitlines()]
    return (rows * (n // max(len(rows), 1) + 1))[:n]


def make_step_timer(count_step: int):
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Seconds and tokens of each optimizer step; FLOPs of step `count_step` (timed steps exclude it)."""

        def __init__(self):
            self.steps: list[tuple[float, int, int]] = []  # (seconds, tokens, global_step)
            self.flops = None
            self.flop_tokens = 0
            self._last = None
            self._mode = None

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == count_step and self.flops is None:
                self._tokens0 = state.num_input_tokens_seen
                self._mode = FlopCounterMode(display=False)
                self._mode.__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            if self._mode is not None:
                self._mode.__exit__(None, None, None)
                self.flops = self._mode.get_total_flops()
                self.flop_tokens = state.num_input_tokens_seen - self._tokens0
                self._mode, self._last = None, None  # the counted step is slow: not timed
                self._tokens_last = state.num_input_tokens_seen
                return
            if self._last is not None:
                self.steps.append((now - self._last, state.num_input_tokens_seen - self._tokens_last, state.global_step))
            self._last, self._tokens_last = now, state.num_input_tokens_seen

    return StepTimer()


CONFIGS = {  # name -> (method, training overrides)
    "fp32_full": ("full", {"precision": "fp32"}),
    "bf16_full": ("full", {"precision": "bf16"}),
    "bf16_full_checkpointing": ("full", {"precision": "bf16", "gradient_checkpointing": True}),
    "bf16_full_accum4": ("full", {"precision": "bf16", "grad_accum": 4}),
    "bf16_full_compile": ("full", {"precision": "bf16", "torch_compile": "on"}),
    "bf16_lora": ("lora", {"precision": "bf16"}),
}


def run_config(name: str, rows, args, work: Path) -> dict:
    from tunesmith.config import config_from_dict
    from tunesmith.training import train

    method, training = CONFIGS[name]
    batch = args.batch // training.get("grad_accum", 1)
    cfg = config_from_dict({
        "name": "bench", "task": "causal-lm", "data": {"path": "unused.jsonl"},
        "model": {"base": MODEL, "max_length": 1024},
        "method": {"kind": method, "lora": {"r": 16, "alpha": 32, "dropout": 0.0,
                                            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                               "up_proj", "down_proj"]}},
        "training": {"max_steps": args.steps + 3, "batch_size": batch, "early_stopping_patience": None,
                     "group_by_length": False, "learning_rate": 1e-5, "warmup_ratio": 0.0,
                     "num_threads": torch.get_num_threads(), **training},
    })
    frame = pd.DataFrame({"text": [str(m) for m in rows], "label": "", "messages": rows, "tools": [None] * len(rows)})
    timer = make_step_timer(count_step=1)  # step 0 warms up; step 1 is counted; the rest are timed
    t0 = time.perf_counter()
    result = train(cfg, Bundle(frame, frame.iloc[:0], frame.iloc[:0]), work / name, callbacks=[timer])
    wall = time.perf_counter() - t0
    timed = timer.steps[1:] if len(timer.steps) > 2 else timer.steps  # the first interval may include compile
    seconds = sum(s for s, _, _ in timed)
    tokens = sum(t for _, t, _ in timed)
    return {"config": name, "method": method, "training": training, "micro_batch": batch,
            "precision": result.precision, "steps_timed": len(timed), "tokens_timed": tokens,
            "seconds_timed": seconds, "tokens_per_s": tokens / seconds if seconds else 0.0,
            "step_seconds_median": statistics.median(s for s, _, _ in timed) if timed else None,
            "counted_flops": timer.flops, "counted_tokens": timer.flop_tokens, "wall_s": wall,
            "trainable_params": result.trainable_params, "total_params": result.total_params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per configuration")
    parser.add_argument("--batch", type=int, default=16, help="conversations per optimizer step (global batch)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ",".join(CONFIGS))
    parser.add_argument("--out", default="benchmarks/results/train_efficiency.json")
    args = parser.parse_args()

    from tunesmith.hub import resolve_model

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads)
    resolve_model(MODEL)  # converted once from the wheel's GGUF, then cached
    peaks = {"bf16": gemm_peak(torch.bfloat16), "fp32": gemm_peak(torch.float32)}
    print(f"GEMM peak on {threads} threads: bf16 {peaks['bf16']:.0f} GFLOP/s, fp32 {peaks['fp32']:.0f} GFLOP/s")
    rows = load_rows(args.batch * (args.steps + 4))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            results.append(run_config(name, rows, args, Path(tmp)))
    # Model FLOPs per token come from the un-checkpointed, un-accumulated run of the same method and precision.
    per_token = {}
    for r in results:
        if r["counted_flops"] and "gradient_checkpointing" not in r["training"] and "grad_accum" not in r["training"]:
            per_token.setdefault((r["method"], r["precision"]), r["counted_flops"] / max(r["counted_tokens"], 1))
    for r in results:
        fpt = per_token.get((r["method"], r["precision"])) or per_token.get((r["method"], "bf16")) or \
            r["counted_flops"] / max(r["counted_tokens"], 1)
        r["model_flops_per_token"] = fpt
        r["analytic_flops_per_token"] = 6 * r["total_params"] if r["method"] == "full" else 4 * r["total_params"]
        r["achieved_gflops"] = fpt * r["tokens_per_s"] / 1e9
        r["peak_gflops"] = peaks[r["precision"]]
        r["fraction_of_peak"] = r["achieved_gflops"] / r["peak_gflops"]
        r["fraction_of_bf16_peak"] = r["achieved_gflops"] / peaks["bf16"]
        print(f"{r['config']:<26} {r['tokens_per_s']:8.0f} tokens/s  {r['achieved_gflops']:7.0f} GFLOP/s  "
              f"{r['fraction_of_peak']:.0%} of the {r['precision']} peak ({r['fraction_of_bf16_peak']:.0%} of bf16); "
              f"{fpt / 1e6:.0f} MFLOP/token counted vs {r['analytic_flops_per_token'] / 1e6:.0f} analytic")
    for r in results:
        print(f"train_efficiency_{r['config']}: {r['fraction_of_bf16_peak']:.3f}")
    best = max(results, key=lambda r: r["fraction_of_bf16_peak"])
    verdict = "met" if best["fraction_of_bf16_peak"] >= 0.40 else "not met"
    print(f"target >= 0.40 of the bf16 GEMM peak: {verdict} (best: {best['config']}, "
          f"{best['fraction_of_bf16_peak']:.3f})")
    summary = {"model": MODEL, "threads": threads, "peaks_gflops": peaks, "batch": args.batch, "steps": args.steps,
               "load_average": os.getloadavg(), "results": results, "best": best["config"], "target_met": verdict}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

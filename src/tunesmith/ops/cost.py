"""What a run and an answer cost: measured CPU/GPU seconds, priced by the config's `cost:` section.

    usage = RunUsage.start()                 # at the start of `tunesmith run`
    ...train, evaluate...
    flat = cost_metrics(cfg, usage.stop(), per_1k=measure_per_1k(cfg, bundle, model_dir))
    # {"cost.cpu_seconds": 812.4, "cost.wall_seconds": 430.1, "cost.train": 0.0102, "cost.per_1k": 0.00031, ...}

A run's CPU seconds are what the process and its children used (user + system time, every thread), its GPU
seconds the wall time of training on each CUDA device it used. An answer's cost is the serving path's own: the
tuned model loaded as `tunesmith serve` loads it, answering test-split inputs in batches of
`serving.max_batch_size`, and priced as the cores it holds for that time (wall time x torch threads), which is how
the server meters `tunesmith_cost_per_1k_inferences` too. Gates read the flat names: `cost.train <= 5`,
`cost.per_1k <= 0.02`.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

PROBE_ITEMS = 256  # test inputs the per-1k probe answers (fewer for generation, see _probe_size)
PROBE_GENERATIONS = 16


@dataclass
class Usage:
    cpu_seconds: float
    wall_seconds: float
    gpu_seconds: float = 0.0
    gpu_name: str | None = None


def _cpu_now() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class RunUsage:
    """CPU and wall time from `start()` to `stop()`; `gpu(seconds)` adds GPU time of a stage that ran on CUDA."""

    cpu0: float
    wall0: float
    gpu_seconds: float = 0.0
    gpu_name: str | None = None

    @classmethod
    def start(cls) -> RunUsage:
        return cls(cpu0=_cpu_now(), wall0=time.perf_counter())

    def add_gpu_stage(self, wall_seconds: float) -> None:
        """A stage that ran for `wall_seconds`: counts for every CUDA device this process used (none: nothing)."""
        name, devices = cuda_devices()
        if devices:
            self.gpu_seconds += wall_seconds * devices
            self.gpu_name = name

    def stop(self) -> Usage:
        return Usage(cpu_seconds=_cpu_now() - self.cpu0, wall_seconds=time.perf_counter() - self.wall0,
                     gpu_seconds=self.gpu_seconds, gpu_name=self.gpu_name)


def cuda_devices() -> tuple[str | None, int]:
    """(device name, how many) of the CUDA devices this process initialised; (None, 0) on CPU."""
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None, 0
    return torch.cuda.get_device_name(0), torch.cuda.device_count()


def cost_metrics(cfg, usage: Usage, *, per_1k_core_seconds: float | None = None,
                 weights_bytes: int | None = None) -> dict[str, float]:
    """The flat `cost.*` names of a run: usage always, money where `cost:` prices it."""
    prices = cfg.cost
    flat = {"cost.cpu_seconds": round(usage.cpu_seconds, 3), "cost.wall_seconds": round(usage.wall_seconds, 3),
            "cost.gpu_seconds": round(usage.gpu_seconds, 3)}
    train = prices.money(usage.cpu_seconds, usage.gpu_seconds, usage.gpu_name)
    if train is not None:
        flat["cost.train"] = train
    if per_1k_core_seconds is not None:
        flat["cost.per_1k_core_seconds"] = per_1k_core_seconds
        per_1k = prices.money(per_1k_core_seconds)
        if per_1k is not None:
            flat["cost.per_1k"] = per_1k
    if weights_bytes is not None and prices.storage_gb_month is not None:
        flat["cost.storage_month"] = weights_bytes / 1e9 * prices.storage_gb_month
    return flat


def wants_cost(cfg) -> bool:
    """Whether a run measures its answers' cost: `cost:` names a price or a gate reads a cost figure."""
    return cfg.cost.priced or any(rule.metric.startswith("cost.") for rule in cfg.gates.rules)


def probe_rows(frame, inputs: tuple[dict, ...], limit: int) -> list[dict]:
    """Up to `limit` test rows as the family's serving inputs (its MLflow input columns). A conversation ends before
    its last assistant turn: that is what a caller sends."""
    names = [col["name"] for col in inputs if col.get("name")]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"the test split has no {', '.join(missing)} column for the serving inputs")
    rows = []
    for record in frame.head(limit).to_dict("records"):
        row = {n: record[n] for n in names}
        messages = row.get("messages")
        if isinstance(messages, list | tuple):
            kept = list(messages)
            while kept and isinstance(kept[-1], dict) and kept[-1].get("role") == "assistant":
                kept.pop()
            row["messages"] = kept
        rows.append(row)
    return rows


def measure_per_1k(cfg, bundle, model_dir: Path) -> float | None:
    """Core-seconds to answer 1,000 test inputs as `tunesmith serve` answers them; None when the family has no
    serving inputs (no MLflow model description) or the test split is empty."""
    import torch

    from tunesmith.families import get as family
    from tunesmith.serving.models import load_served

    spec = family(cfg.task).mlflow
    if spec is None or not len(bundle.test):
        return None
    generating = any(col.get("name") == "messages" for col in spec.inputs)
    rows = probe_rows(bundle.test, spec.inputs, PROBE_GENERATIONS if generating else PROBE_ITEMS)
    served = load_served(Path(model_dir), name=cfg.name, version=0, options=cfg.serving.inference)
    items = spec.items(served, rows, {})
    size = cfg.serving.max_batch_size
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    predict = served.family.predict
    predict(served, batches[0][:1])  # warm-up: first-call allocations, as a server's first request
    start = time.perf_counter()
    for batch in batches:
        predict(served, batch)
    seconds = time.perf_counter() - start
    return seconds * torch.get_num_threads() / len(items) * 1000

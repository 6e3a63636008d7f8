"""What machine a benchmark figure comes from: CPU model, its bf16 matrix flags, threads and load."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f")


def cpu_info() -> dict:
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "flags": {f: f in flags for f in FLAGS}, "threads": threads,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def cpu_line(info: dict | None = None) -> str:
    info = info or cpu_info()
    flags = " ".join(f"{k}={'yes' if v else 'no'}" for k, v in info["flags"].items())
    load = ", ".join(f"{x:.2f}" for x in info["load_average"])
    return f"machine: {info['cpu']}; {flags}; {info['threads']} threads; load average {load} (1/5/15 min)"


def verdict(value: float, target: float) -> str:
    return "met" if value >= target else "NOT MET"

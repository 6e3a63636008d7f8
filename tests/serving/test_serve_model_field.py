"""The OpenAI `model` field: NAME is routed (canary / shadow), NAME:VERSION and NAME@ALIAS pin a loaded version,
anything else is a 404 model_not_found; GET /v1/models lists what is loaded. Streams count for rollback and are
shadowed like any other answer."""

from __future__ import annotations

import httpx
import openai
import pytest
from tests.serving.serve_helpers import LiveServer, register, settings, wait_for

from tunesmith.monitoring import PredictionLog, read_predictions
from tunesmith.serving import create_app
from tunesmith.serving.router import Role

MESSAGES = [{"role": "user", "content": "hello great film"}]


def _two_chat_versions(store, tmp_path, chat_dir) -> None:
    register(store, tmp_path, "chat", chat_dir, champion=True)  # v1 champion
    register(store, tmp_path, "chat", chat_dir, champion=False)  # v2 challenger (same weights: answers agree)


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def _sample(state, name: str, **labels) -> float:
    return sum(sample.value for metric in state.metrics.registry.collect() for sample in metric.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def test_model_field_pins_versions_and_unknown_models_are_404(store, tmp_path, chat_dir):
    _two_chat_versions(store, tmp_path, chat_dir)
    app = create_app("chat", settings=settings(challenger=True, canary={"percent": 100}), store=store)
    with LiveServer(app) as server:
        client = _client(server)
        ids = [m.id for m in client.models.list()]
        assert sorted(ids) == ["chat", "chat:1", "chat:2", "chat@challenger", "chat@champion"]
        assert client.models.retrieve("chat:2").model_version == 2

        def version(model: str, **kw) -> str:
            raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, max_tokens=3, **kw)
            assert raw.parse().model_version == int(raw.headers["x-model-version"].split(":")[1])
            return raw.headers["x-model-version"]

        assert version("chat") == "chat:2"  # routed: the canary sends everything to the challenger
        assert {version("chat:1") for _ in range(3)} == {"chat:1"}  # pinned: no canary split
        assert version("chat@champion") == "chat:1" and version("chat@challenger") == "chat:2"
        chunks = list(client.chat.completions.create(model="chat:1", messages=MESSAGES, max_tokens=3, stream=True))
        assert {c.model_version for c in chunks} == {1}
        done = client.completions.with_raw_response.create(model="chat@champion", prompt="the film", max_tokens=3)
        assert done.headers["x-model-version"] == "chat:1"

        for bad in ("gpt-4o", "chat:9", "chat:one", "chat@staging", "other:1"):
            with pytest.raises(openai.NotFoundError) as err:
                client.chat.completions.create(model=bad, messages=MESSAGES, max_tokens=3)
            assert err.value.code == "model_not_found" and err.value.param == "model", bad
            assert bad in err.value.message
        with pytest.raises(openai.NotFoundError):
            client.completions.create(model="chat:9", prompt="x", max_tokens=2, stream=True)
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("chat:9")
        # The challenger is unloaded: its pins are 404 now, never a 500.
        app.state.serving.slots.pop(Role.CHALLENGER)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="chat@challenger", messages=MESSAGES, max_tokens=3)
        assert sorted(m.id for m in client.models.list()) == ["chat", "chat:1", "chat@champion"]


def test_pinned_requests_are_not_shadowed_on_task_routes(store, tmp_path, classifier_dirs):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    register(store, tmp_path, "clf", classifier_dirs[1], champion=False)
    app = create_app("clf", settings=settings(shadow=True), store=store)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        pinned = [client.post("/v1/classify", json={"input": "great", "model": "clf:2"}) for _ in range(4)]
        assert {r.headers["x-model-version"] for r in pinned} == {"clf:2"}
        routed = [client.post("/v1/classify", json={"input": "great", "model": "clf"}) for _ in range(3)]
        assert {r.headers["x-model-version"] for r in routed} == {"clf:1"}
        missing = client.post("/v1/score", json={"input": "great", "model": "nope"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
        state = app.state.serving
        assert wait_for(lambda: _sample(state, "tunesmith_shadow_comparisons_total") == 3)
    assert _sample(state, "tunesmith_shadow_comparisons_total") == 3  # all shadow copies have finished by now
    assert _sample(state, "tunesmith_requests_total", role="challenger", status="200") == 4


def test_streams_are_shadowed_and_timed(store, tmp_path, chat_dir):
    _two_chat_versions(store, tmp_path, chat_dir)
    log = PredictionLog(f"sqlite:///{tmp_path}/pred.db")
    app = create_app("chat", settings=settings(shadow=True), store=store, prediction_log=log)
    with LiveServer(app) as server:
        client = _client(server)
        list(client.chat.completions.create(model="chat:1", messages=MESSAGES, max_tokens=4, stream=True))
        streamed = []
        for i in range(3):
            chunks = list(client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"great film {i}"}], max_tokens=4, stream=True))
            assert {c.model_version for c in chunks} == {1}  # the shadow copy never reaches the client
            streamed.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
        state = app.state.serving
        assert wait_for(lambda: _sample(state, "tunesmith_shadow_comparisons_total") == 3)
    assert _sample(state, "tunesmith_shadow_comparisons_total", agree="true") == 3  # same weights, greedy
    assert _sample(state, "tunesmith_shadow_latency_delta_seconds_count") == 3
    assert _sample(state, "tunesmith_time_to_first_token_seconds_count", role="champion") == 4
    rows = read_predictions(log.url, model="chat")
    shadows = [r for r in rows if r["role"] == "shadow"]
    assert len(shadows) == 3 and {r["version"] for r in shadows} == {2}
    champion_texts = sorted(r["output"]["text"] for r in rows if r["role"] == "champion")
    assert len(champion_texts) == 4 and set(streamed) <= set(champion_texts)


@pytest.mark.parametrize("failure", ["error", "latency"])
def test_streamed_challenger_answers_count_toward_rollback(store, tmp_path, chat_dir, failure):
    _two_chat_versions(store, tmp_path, chat_dir)
    slo = {"window": 5, "min_requests": 5, "max_error_rate": 0.5}
    if failure == "latency":
        slo["max_p95_ms"] = 0.001  # every real completion is slower: the streams' latency must be what trips it
    app = create_app("chat", settings=settings(challenger=True, canary={"percent": 100}, rollback=slo), store=store)
    with LiveServer(app) as server:
        state = app.state.serving
        if failure == "error":
            def broken(*args, **kwargs):
                raise RuntimeError("injected challenger failure")

            state.slots[Role.CHALLENGER].served.model.forward = broken  # generate and the scheduler both call it
        client = _client(server)
        for _ in range(5):
            try:
                list(client.completions.create(model="chat", prompt="the film", max_tokens=3, stream=True))
            except openai.APIError as exc:  # the failure arrives in-band, after the 200 headers
                assert failure == "error" and "injected" in str(exc)
        assert Role.CHALLENGER not in state.slots
        reason = next(e for e in state.events if e["event"] == "rollback")["reason"]
        assert ("error rate" if failure == "error" else "p95 latency") in reason
        chunks = list(client.completions.create(model="chat", prompt="the film", max_tokens=3, stream=True))
        assert {c.model_version for c in chunks} == {1}

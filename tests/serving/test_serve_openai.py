"""The official `openai` client against a real server on loopback: chat (plain and streaming), completions,
embeddings; every answer names the model version and the request id."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from tests.serving.serve_helpers import LiveServer, register, settings

from tunesmith.serving import create_app


def test_openai_chat_completions_and_streaming(store, tmp_path, chat_dir):
    register(store, tmp_path, "chat", chat_dir, champion=True)
    app = create_app("chat", settings=settings(), store=store)
    with LiveServer(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hello great film"}], max_tokens=8)
        reply = raw.parse()
        assert raw.headers["x-model-version"] == "chat:1"
        assert raw.headers["x-request-id"] == reply.request_id
        assert reply.choices[0].message.role == "assistant"
        assert isinstance(reply.choices[0].message.content, str)
        assert 1 <= reply.usage.completion_tokens <= 8
        assert reply.model_version == 1

        chunks = list(client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello great film"}], max_tokens=8, stream=True))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        # the same reason as the non-streamed answer: "length" at max_tokens, as OpenAI says
        assert chunks[-1].choices[0].finish_reason == reply.choices[0].finish_reason in ("stop", "length")
        assert streamed == reply.choices[0].message.content  # greedy: the stream spells the same answer

        done = client.completions.create(model="chat", prompt="the film was", max_tokens=5)
        assert done.choices[0].text is not None and done.usage.completion_tokens <= 5

        # A chat model does not classify: a clear 400 naming the routes it answers.
        with pytest.raises(openai.BadRequestError, match="chat/completions"):
            client.embeddings.create(model="chat", input=["x"])


def test_openai_embeddings(store, tmp_path, encoder_dir):
    register(store, tmp_path, "enc", Path(encoder_dir), champion=True)
    app = create_app("enc", settings=settings(), store=store)
    with LiveServer(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)
        out = client.embeddings.create(model="enc", input=["great film", "dull plot", "great film"])
        vectors = [d.embedding for d in out.data]
        assert [d.index for d in out.data] == [0, 1, 2]
        assert len(vectors[0]) == 32
        assert vectors[0] == pytest.approx(vectors[2], abs=1e-5)
        assert vectors[0] != pytest.approx(vectors[1], abs=1e-3)
        assert out.usage.prompt_tokens > 0

"""Continuous batching of a chat model (serving.generation: batched): greedy rows give exactly what one unbatched
`generate` gives, requests join a running batch and leave it when done, max_batch_size holds, a stream whose client
leaves stops being generated (in the scheduler and through a real server)."""

from __future__ import annotations

import threading
import time

import httpx
from tests.serving.serve_helpers import LiveServer, register, settings, wait_for

from tunesmith.families.causal_lm.scheduler import GenerationScheduler
from tunesmith.families.causal_lm.serve import GenParams, chat_prompt, generate
from tunesmith.serving import create_app
from tunesmith.serving.models import load_served

WORDS = ["hello great film", "bad", "the acting was wonderful and the plot fine", "meh", "terrible boring movie"]


def _alone(served, prompt: str, params: GenParams) -> str:
    """What the sequential path (one `generate` for this prompt alone) answers."""
    (gen,) = generate(served, [(prompt, params)])
    return gen.text


def test_batched_generation_matches_generate_joins_leaves_and_cancels(chat_dir):
    batched = load_served(chat_dir, name="chat", version=1, settings=settings(max_batch_size=3))
    sequential = load_served(chat_dir, name="chat", version=1)  # no server settings: one generate per request
    scheduler = batched.scheduler
    assert scheduler is not None and sequential.scheduler is None and batched.batch_workers == 3
    prompts = [chat_prompt(batched, [{"role": "user", "content": w}]) for w in WORDS]
    lengths = [60, 6, 30, 12, 18]

    # A long request runs first; the others arrive while it is being generated and join its batch.
    first = scheduler.submit(prompts[0], GenParams(max_tokens=lengths[0]))
    assert wait_for(lambda: scheduler.stats["steps"] >= 2, timeout=10, step=0.005)
    requests = [first] + [scheduler.submit(p, GenParams(max_tokens=n), stream=i % 2 == 0)
                          for i, (p, n) in enumerate(zip(prompts[1:], lengths[1:], strict=True))]
    sampled = scheduler.submit(prompts[1], GenParams(max_tokens=8, temperature=0.9, top_p=0.8))
    results = [r.result(60) for r in requests]
    for prompt, n, got in zip(prompts, lengths, results, strict=True):
        assert got.text == _alone(sequential, prompt, GenParams(max_tokens=n))  # greedy: exact, padded or not
        assert got.finish_reason in ("stop", "length") and got.completion_tokens <= n
    streamed = ["".join(r) for r in requests[1::2]]
    assert streamed == [r.text for r in results[1::2]]  # the pieces spell the whole answer
    assert 1 <= sampled.result(60).completion_tokens <= 8
    assert scheduler.stats["joined"] >= 4  # the later requests joined the first one's running batch
    assert 2 <= scheduler.stats["max_rows"] <= 3  # batched, and never more rows than max_batch_size
    assert scheduler.busy_s > 0  # what the cost metering counts

    # A stop string ends its row early, cut before the stop; non-streamed generate goes through the scheduler.
    reference = results[2].text
    stop = reference[len(reference) // 2:len(reference) // 2 + 2]
    (cut,) = generate(batched, [(prompts[2], GenParams(max_tokens=lengths[2], stop=(stop,)))])
    assert cut.text == reference[:reference.index(stop)] and cut.finish_reason == "stop"
    assert cut.completion_tokens < results[2].completion_tokens
    streamed_stop = scheduler.submit(prompts[2], GenParams(max_tokens=lengths[2], stop=(stop,)), stream=True)
    assert "".join(streamed_stop) == cut.text  # nothing of the stop string (or after it) reaches the stream

    # A stream cancelled after its first piece leaves the batch; the row beside it is not disturbed.
    steps = scheduler.stats["steps"]
    leaving = scheduler.submit(prompts[0], GenParams(max_tokens=200), stream=True)
    staying = scheduler.submit(prompts[3], GenParams(max_tokens=40))
    next(iter(leaving))
    leaving.cancel()
    assert staying.result(60).text == _alone(sequential, prompts[3], GenParams(max_tokens=40))
    assert leaving.result(10).finish_reason == "cancelled" and len(leaving.tokens) < 60
    assert scheduler.stats["cancelled"] == 1 and scheduler.stats["steps"] - steps < 60
    assert wait_for(lambda: scheduler.active == 0, timeout=5)

    # a logits processor the scheduler does not apply: the model is served sequentially, the warning says why
    sequential.model.generation_config.repetition_penalty = 1.3
    assert "repetition_penalty" in GenerationScheduler.unsupported(sequential.model)


def test_a_client_leaving_a_stream_stops_its_generation(store, tmp_path, chat_dir):
    register(store, tmp_path, "chat", chat_dir, champion=True)
    app = create_app("chat", settings=settings(max_batch_size=4), store=store)
    sequential = load_served(chat_dir, name="chat", version=1)
    with LiveServer(app) as server:
        state = app.state.serving
        served = state.champion()
        body = {"model": "chat", "prompt": "the film was", "max_tokens": 200, "stream": True}
        with httpx.Client(timeout=30) as client, client.stream("POST", f"{server.url}/v1/completions",
                                                               json=body) as response:
            assert response.status_code == 200
            next(response.iter_lines())  # the first chunk came; then the client goes away
        assert wait_for(lambda: served.scheduler.stats["cancelled"] == 1, timeout=20)
        assert served.scheduler.stats["tokens"] < 150  # not generated to the end for nobody

        # concurrent non-streamed requests share batches and get the same answers as alone
        answers: dict[int, str] = {}

        def ask(i: int) -> None:
            reply = httpx.post(f"{server.url}/v1/completions", json={"model": "chat", "prompt": WORDS[i],
                                                                     "max_tokens": 10}, timeout=60)
            answers[i] = reply.json()["choices"][0]["text"]

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
            time.sleep(0.01)
        for t in threads:
            t.join()
        assert served.scheduler.stats["max_rows"] >= 2
        for i, text in answers.items():
            assert text == _alone(sequential, WORDS[i], GenParams(max_tokens=10))
    samples = [s for m in state.metrics.registry.collect() for s in m.samples]
    assert sum(s.value for s in samples if s.name == "tunesmith_requests_total" and s.labels["status"] == "499") == 1
    assert sum(s.value for s in samples if s.name == "tunesmith_time_to_first_token_seconds_count") == 1

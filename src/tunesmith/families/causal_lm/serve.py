"""Serving a chat model: /v1/chat/completions and /v1/completions in OpenAI's shape (streamed or not). Under
`serving.generation: batched` (the default) concurrent requests, streamed or not, are continuously batched by the
model's GenerationScheduler (scheduler.py); under `sequential`, requests with the same generation settings are
generated as one left-padded `generate` and streams one at a time.

    items = [(chat_prompt(served, messages), GenParams(max_tokens=64))]
    [generation] = generate(served, items)
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from tunesmith.serving import schemas as s
from tunesmith.serving.kit import ApiError, caller, check, each, ids, tag, texts
from tunesmith.serving.models import Served, architecture, load_transformer
from tunesmith.serving.state import Answer, ServingState

_log = logging.getLogger("tunesmith.serving")


def recognizes(model_dir: Path, config: dict) -> bool:
    return architecture(config).endswith("ForCausalLM")


def load_served(model_dir: Path, served: Served) -> None:
    from transformers import AutoModelForCausalLM

    load_transformer(served, AutoModelForCausalLM)
    served.tokenizer.padding_side = "left"  # generation continues from the last real token
    if served.tokenizer.pad_token is None:
        served.tokenizer.pad_token = served.tokenizer.eos_token
    served.output = "next-token"
    served.onnx_refusal = "ONNX export here is for encoder models"
    settings = served.settings
    if settings is not None and getattr(settings, "generation", "sequential") == "batched":
        from tunesmith.families.causal_lm.scheduler import GenerationScheduler

        why = GenerationScheduler.unsupported(served.model)
        if why:
            _log.warning("model %s: serving.generation batched falls back to sequential: %s", served.tag, why)
        else:
            served.scheduler = GenerationScheduler(served, max_batch_size=settings.max_batch_size,
                                                   max_wait_ms=settings.max_wait_ms, result=Generation,
                                                   apply_stop=_apply_stop)
            served.batch_workers = settings.max_batch_size  # each batcher batch joins the scheduler's batch


def describe_model(model_dir: Path) -> dict:
    """Whether the dir carries a chat template (what /v1/chat/completions needs)."""
    path = Path(model_dir) / "tokenizer_config.json"
    try:
        has_template = bool(json.loads(path.read_text()).get("chat_template")) or (Path(model_dir) / "chat_template.jinja").exists()
    except (OSError, ValueError):
        has_template = False
    return {"chat_template": has_template}


def predict(served: Served, items: list) -> list:
    return generate(served, items)


@dataclass(frozen=True)
class GenParams:
    """Generation settings of one request; requests in a batch are generated together when these match."""

    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"



def with_text(gen: Generation, text: str, finish_reason: str | None) -> Generation:
    """The generation with `text` instead (serving.filters); the token counts stay what the model generated."""
    return Generation(text, gen.prompt_tokens, gen.completion_tokens, finish_reason or gen.finish_reason)


def json_invalid(gen: Generation, schema: dict) -> str | None:
    """Why the generation is not JSON valid against `schema` (a ```json fence allowed), or None."""
    from tunesmith.families.causal_lm.text_metrics import json_valid

    (score,), (reason,) = json_valid([gen.text], schema)
    return None if score else reason


def sampled(item: tuple[str, GenParams]) -> tuple[str, GenParams]:
    """The same prompt generated once more, sampled (temperature 0.7) where it was greedy: a retry of a greedy
    answer would repeat it."""
    prompt, params = item
    return prompt, replace(params, temperature=params.temperature or 0.7)


def chat_prompt(served: Served, messages: list[dict]) -> str:
    """The model's own chat template applied to OpenAI-style messages, ending with the assistant turn."""
    if not getattr(served.tokenizer, "chat_template", None):
        raise ValueError(f"model {served.tag} has no chat template; use /v1/completions with a plain prompt")
    return served.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _gen_kwargs(served: Served, params: GenParams) -> dict:
    kwargs = {"max_new_tokens": params.max_tokens, "pad_token_id": served.tokenizer.pad_token_id}
    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
    else:
        kwargs.update(do_sample=False)
    return kwargs


def generate(served: Served, items: list[tuple[str, GenParams]]) -> list[Generation]:
    """Complete each prompt: through the model's scheduler (continuous batching) when it has one, else prompts
    with the same settings as one left-padded batch."""
    if served.scheduler is not None:
        timeout = served.settings.request_timeout_s if served.settings is not None else None
        return served.scheduler.generate(items, timeout=timeout)
    out: list[Generation | None] = [None] * len(items)
    groups: dict[GenParams, list[int]] = {}
    for i, (_, params) in enumerate(items):
        groups.setdefault(params, []).append(i)
    for params, idx in groups.items():
        prompts = [items[i][0] for i in idx]
        enc = served.tokenizer(prompts, padding=True, return_tensors="pt", add_special_tokens=False)
        with served.lock, torch.inference_mode(), served.autocast_ctx():
            ids = served.model.generate(**enc, **_gen_kwargs(served, params))
        width = enc["input_ids"].shape[1]
        for row, i in zip(ids, idx, strict=True):
            new = row[width:]
            new = new[new != served.tokenizer.pad_token_id] if served.tokenizer.pad_token_id is not None else new
            text = served.tokenizer.decode(new, skip_special_tokens=True)
            text, stopped = _apply_stop(text, params.stop)
            hit_eos = len(new) < params.max_tokens
            out[i] = Generation(text, int(enc["attention_mask"][idx.index(i)].sum()), len(new),
                                "stop" if stopped or hit_eos else "length")
    return out  # type: ignore[return-value]


PYFUNC_MAX_TOKENS = 256  # serving.max_new_tokens' default: an MLflow scoring server has no tunesmith config
ROLES = ("system", "user", "assistant", "tool", "developer")


def pyfunc_items(served: Served, rows: list[dict], params: dict) -> list[tuple[str, GenParams]]:
    """Each row's `messages` (OpenAI-style) as a chat prompt, with the generation params of the call."""
    gen = pyfunc_params(params)
    items = []
    for i, row in enumerate(rows):
        messages = row.get("messages")
        messages = list(messages) if messages is not None and not isinstance(messages, str | dict) else None
        if not messages or not all(isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
                                   for m in messages):
            raise ValueError(f"row {i}: column 'messages' must be a non-empty list of {{role, content}} messages "
                             f"(role one of {', '.join(ROLES)})")
        items.append((chat_prompt(served, [{"role": m["role"], "content": m["content"]} for m in messages]), gen))
    return items


def pyfunc_params(params: dict) -> GenParams:
    """max_tokens (1..256), temperature (0..2), top_p (0..1]: the same bounds as /v1/chat/completions."""
    try:
        max_tokens, temperature = int(params.get("max_tokens", 64)), float(params.get("temperature", 0.0))
        top_p = float(params.get("top_p", 1.0))
    except (TypeError, ValueError):
        raise ValueError("params: max_tokens is an integer, temperature and top_p are numbers") from None
    if not 1 <= max_tokens <= PYFUNC_MAX_TOKENS:
        raise ValueError(f"params.max_tokens: {max_tokens} is outside 1..{PYFUNC_MAX_TOKENS}")
    if not (0.0 <= temperature <= 2.0 and 0.0 < top_p <= 1.0):
        raise ValueError("params: temperature is in 0..2 and top_p in (0, 1]")
    return GenParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p)


def pyfunc_result(_served: Served, generation: Generation) -> dict:
    """One row's answer: the generated text (the chat completion's message content), why it ended, token counts."""
    return {"text": generation.text, "finish_reason": generation.finish_reason,
            "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens}


def stream(served: Served, prompt: str, params: GenParams):
    """Text pieces as the model produces them, an iterator with `cancel()` (the client left: stop generating):
    a row of the model's scheduler, else `generate` in a thread with transformers' TextIteratorStreamer."""
    if served.scheduler is not None:
        return served.scheduler.submit(prompt, params, stream=True)
    return _Sequential(served, prompt, params)


class _Sequential:
    """One streamed `generate` under the model's lock; `cancel()` stops it at the next token."""

    def __init__(self, served: Served, prompt: str, params: GenParams):
        from transformers import StoppingCriteria, StoppingCriteriaList

        self._cancelled = threading.Event()
        cancelled = self._cancelled

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        self._pieces = _stream_sequential(served, prompt, params, StoppingCriteriaList([Cancelled()]), cancelled)

    def cancel(self) -> None:
        self._cancelled.set()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._pieces)


def _stream_sequential(served: Served, prompt: str, params: GenParams, stopping, cancelled) -> Iterator[str]:
    from transformers import TextIteratorStreamer

    enc = served.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    streamer = TextIteratorStreamer(served.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
    errors: list[BaseException] = []

    def work():
        try:
            with served.lock, torch.inference_mode(), served.autocast_ctx():
                served.model.generate(**enc, streamer=streamer, stopping_criteria=stopping,
                                      **_gen_kwargs(served, params))
        except BaseException as exc:  # surfaced to the reader below
            errors.append(exc)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    produced = ""
    for piece in streamer:
        if not piece:
            continue
        produced += piece
        cut, stopped = _apply_stop(produced, params.stop)
        if stopped:
            tail = cut[len(produced) - len(piece):]
            if tail:
                yield tail
            cancelled.set()  # the rest is never sent: stop generating it
            break
        yield piece
    thread.join()
    if errors:
        raise errors[0]


def _apply_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    cuts = [text.index(s) for s in stop if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


# --- the OpenAI-compatible routes -----------------------------------------------------------------------------


def mount_chat(app, state) -> None:
    """POST /v1/chat/completions: OpenAI-compatible chat completions; `stream: true` answers Server-Sent Events."""

    @app.post("/v1/chat/completions", response_model=s.ChatResponse, tags=["openai"])
    async def chat(body: s.ChatRequest, request: Request, response: Response):
        """OpenAI-compatible chat completions; `stream: true` answers Server-Sent Events."""
        served = check(state, "/v1/chat/completions", body.model)
        texts(state, [m.content for m in body.messages], "messages.content")
        if served.upstream is not None:  # serving.engine: openai-compatible
            return await served.family.engine.forward(state, request, response, body, chat=True)
        try:
            prompt = chat_prompt(served, [m.model_dump() for m in body.messages])
        except ValueError as exc:
            raise ApiError(400, str(exc), "invalid_request_error") from None
        params = _params(body, state)
        prompt = _fit_prompt(served, prompt, params, "messages")
        if body.stream and state.settings.filters.text_active:  # a filter must see the whole answer first
            return await _filtered_stream(state, request, body, prompt, params, chat=True)
        if body.stream:
            return _stream(state, request, body, prompt, params, chat=True)
        return await _complete(state, request, response, "/v1/chat/completions", prompt, params, body, chat=True)


def mount_completions(app, state) -> None:
    """POST /v1/completions: OpenAI-compatible text completions; `stream: true` answers Server-Sent Events."""

    @app.post("/v1/completions", response_model=s.CompletionResponse, tags=["openai"])
    async def completions(body: s.CompletionRequest, request: Request, response: Response):
        """OpenAI-compatible text completions; `stream: true` answers Server-Sent Events."""
        served = check(state, "/v1/completions", body.model)
        texts(state, body.prompt, "prompt")
        if served.upstream is not None:  # serving.engine: openai-compatible
            return await served.family.engine.forward(state, request, response, body, chat=False)
        params = _params(body, state)
        prompt = _fit_prompt(served, body.prompt, params, "prompt")
        if body.stream and state.settings.filters.text_active:  # a filter must see the whole answer first
            return await _filtered_stream(state, request, body, prompt, params, chat=False)
        if body.stream:
            return _stream(state, request, body, prompt, params, chat=False)
        return await _complete(state, request, response, "/v1/completions", prompt, params, body, chat=False)


def _params(body, state: ServingState) -> GenParams:
    wanted = body.max_completion_tokens or body.max_tokens or min(64, state.settings.max_new_tokens)
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return GenParams(max_tokens=min(wanted, state.settings.max_new_tokens),
                              temperature=body.temperature, top_p=body.top_p, stop=stop)


async def _complete(state, request, response, route, prompt, params, body, *, chat: bool):
    answers, served = await each(state, request, route, [(prompt, params)], log_inputs=[_log_input(body, chat)],
                                  model=body.model)
    gen = answers[0].result
    tag(response, served)
    usage = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
             "total_tokens": gen.prompt_tokens + gen.completion_tokens}
    rid = request.state.request_id
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": gen.text},
                  "finish_reason": gen.finish_reason}
        return {**ids(request, served), "id": f"chatcmpl-{rid}", "object": "chat.completion",
                "created": int(time.time()), "choices": [choice], "usage": usage}
    choice = {"index": 0, "text": gen.text, "finish_reason": gen.finish_reason, "logprobs": None}
    return {**ids(request, served), "id": f"cmpl-{rid}", "object": "text_completion",
            "created": int(time.time()), "choices": [choice], "usage": usage}


def _chunk(chat: bool, text: str | None, finish: str | None, *, rid: str, created: int, model: str,
           version: int) -> str:
    """One Server-Sent Event in OpenAI's chunk shape (chat: a delta; completions: text)."""
    if chat:
        delta = {"role": "assistant", "content": text} if text is not None else {}
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
    body = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{rid}", "object": "chat.completion.chunk" if chat else
            "text_completion", "created": created, "model": model, "model_version": version, "request_id": rid,
            "choices": [choice]}
    return f"data: {json.dumps(body)}\n\n"


async def _filtered_stream(state, request, body, prompt, params, *, chat: bool) -> StreamingResponse:
    """`stream: true` under serving.filters' text filters: the answer is generated and filtered whole (a filter
    that saw only the first tokens would let the rest through), then sent as OpenAI's chunks."""
    route = "/v1/chat/completions" if chat else "/v1/completions"
    tagged = Response()
    done = await _complete(state, request, tagged, route, prompt, params, body, chat=chat)
    choice = done["choices"][0]
    text = choice["message"]["content"] if chat else choice["text"]

    def chunk(piece: str | None, finish: str | None) -> str:
        return _chunk(chat, piece, finish, rid=done["request_id"], created=done["created"], model=done["model"],
                      version=done["model_version"])

    async def events():
        yield chunk(text, None)
        yield chunk(None, choice["finish_reason"])
        yield "data: [DONE]\n\n"

    headers = {"x-model-version": tagged.headers.get("x-model-version", ""), "cache-control": "no-cache"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _log_input(body, chat: bool):
    return [m.model_dump() for m in body.messages] if chat else body.prompt


def _stream(state: ServingState, request: Request, body, prompt: str, params, *, chat: bool) -> StreamingResponse:
    """SSE chunks in OpenAI's format, ending with `data: [DONE]`; served by the role the canary picks (or the
    pinned version). A finished stream counts for rollback like any answer, and a champion stream is shadowed."""
    if state.streams.locked():
        raise ApiError(429, "too many streams in progress; retry shortly", "rate_limit_error", {"Retry-After": "1"})
    pin = state.resolve_model(body.model)
    if pin is not None:
        served = check(state, "/v1/chat/completions" if chat else "/v1/completions", body.model)
        role = state.slot_for_version(pin)[0]
    else:
        role = state.role_for(caller(state, request))
        served = state.slots[role].served if role in state.slots else state.champion()
    rid, created = request.state.request_id, int(time.time())
    route = "/v1/chat/completions" if chat else "/v1/completions"
    labels = (route, served.name, str(served.version), role.value)

    def chunk(text: str | None, finish: str | None) -> str:
        return _chunk(chat, text, finish, rid=rid, created=created, model=served.name, version=served.version)

    async def events():
        async with state.streams:
            start = time.perf_counter()
            pieces = stream(served, prompt, params)
            sentinel = object()
            status, text, error = "499", [], None  # 499 (client closed request) if the client goes away mid-stream
            try:
                try:
                    while True:
                        piece = await asyncio.to_thread(next, pieces, sentinel)
                        if piece is sentinel:
                            break
                        if not text:
                            state.metrics.first_token.labels(*labels).observe(time.perf_counter() - start)
                        text.append(piece)
                        yield chunk(piece, None)
                    status = "200"
                except Exception as exc:  # headers are gone already: report in-band below, as OpenAI does
                    error = exc
                # Judged (rollback window), shadowed and logged before the client hears the stream is over,
                # so a request after one that tripped a rollback already goes to the champion.
                full = "".join(text)
                gen = getattr(pieces, "generation", None) or Generation(
                    full, len(served.tokenizer(prompt, add_special_tokens=False)["input_ids"]),
                    len(served.tokenizer(full, add_special_tokens=False)["input_ids"]), "stop")
                await state.streamed(route, (prompt, params), Answer(gen, served, role, time.perf_counter() - start),
                                     ok=error is None, request_id=rid, log_input=_log_input(body, chat),
                                     pinned=pin is not None)
                if error is None:
                    yield chunk(None, gen.finish_reason)
                    yield "data: [DONE]\n\n"
                else:
                    yield f"data: {json.dumps({'error': {'message': str(error), 'type': 'server_error'}})}\n\n"
            finally:
                pieces.cancel()  # a client that left mid-stream: its row stops being generated
                state.metrics.requests.labels(*labels, status if error is None else "500").inc()
                state.metrics.latency.labels(*labels).observe(time.perf_counter() - start)

    headers = {"x-model-version": served.tag, "cache-control": "no-cache"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)




def _fit_prompt(served, prompt: str, params, field: str) -> str:
    """The prompt to generate from: BOS for an empty one; a 422 when prompt + max_tokens exceed the context."""
    tokens = len(served.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if tokens == 0:
        if not served.tokenizer.bos_token:
            raise ApiError(422, f"invalid request: {field}: empty prompt; give some text", "invalid_request_error")
        prompt, tokens = served.tokenizer.bos_token, 1
    context = getattr(served.model.config, "max_position_embeddings", None)
    if context and tokens + params.max_tokens > context:
        raise ApiError(422, f"invalid request: {field}: {tokens} prompt tokens + max_tokens {params.max_tokens} exceed "
                       f"the model's context of {context} tokens; shorten the prompt or lower max_tokens",
                       "invalid_request_error")
    return prompt



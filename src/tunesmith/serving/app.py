"""The FastAPI app: task routes, OpenAI-compatible routes, health, readiness and Prometheus metrics.

    app = create_app("sentiment", settings=cfg.serving, store=open_store(cfg.registry))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Every answer carries `x-model-version: name:version` and `x-request-id` headers, and the same in its body.
Errors use OpenAI's shape `{"error": {"message", "type", "code"}}`: 400 a route the model's task does not
serve, 401 bad token, 404 unknown `model` (code model_not_found), 413 body too large, 422 invalid body,
429 queue full (Retry-After), 503 no model, 504 timed out.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import os
import time
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunesmith.serving import handlers
from tunesmith.serving import schemas as s
from tunesmith.serving.batching import QueueFull
from tunesmith.serving.middleware import BodyLimit, RequestContext
from tunesmith.serving.model_routes import add_model_routes, model_not_found
from tunesmith.serving.router import Role
from tunesmith.serving.state import Answer, ModelNotFound, NoModel, RouteNotServed, ServingState

_log = logging.getLogger("tunesmith.serving")
OPEN_ROUTES = ("/healthz", "/readyz", "/review/login", "/review/healthz")  # /review: review.web; /metrics needs a token


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None):
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}
        super().__init__(message)


def create_app(name: str, *, settings, store=None, prediction_log=None, state: ServingState | None = None) -> FastAPI:
    """A server for registered model `name` (its champion, and challenger when `settings.challenger`)."""
    state = state or ServingState(name, settings=settings, store=store, prediction_log=prediction_log)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.start()
        yield
        await state.stop()  # uvicorn got here after in-flight requests finished; drain the queues too

    app = FastAPI(title=f"tunesmith serve: {name}", version="1", lifespan=lifespan,
                  responses={k: {"model": s.ErrorResponse} for k in (400, 401, 404, 413, 422, 429, 503, 504)})
    app.state.serving = state
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, on_reject=_count_rejected(state))
    _install_handlers(app, state)
    add_model_routes(app, state)
    # Outermost last: every answer, 401 and 413 included, carries the request id.
    app.add_middleware(RequestContext, token=os.environ.get(settings.auth_token_env) or "",
                       token_env=settings.auth_token_env, open_paths=OPEN_ROUTES, on_reject=_count_rejected(state),
                       path_tokens=_metrics_token(settings))

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": s.ErrorResponse}})
    async def readyz(request: Request) -> dict:
        """A champion is loaded and taking requests; lists what each role serves."""
        champion = state.champion()
        models = {role.value: slot.served.tag for role, slot in state.slots.items()}
        return {"status": "ready", "model": champion.name, "model_version": champion.version, "task":
                champion.task.value, "serving": models, "canary_percent": state.settings.canary.percent
                if Role.CHALLENGER in state.slots else 0, "shadow": state.settings.shadow}

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus exposition of every tunesmith metric."""
        for slot in state.slots.values():
            state.metrics.queue_depth.labels(slot.served.name, str(slot.served.version)).set(slot.batcher.depth)
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/classify", response_model=s.ClassifyResponse, tags=["tasks"])
    async def classify(body: s.ClassifyRequest, request: Request, response: Response):
        """Label each text with its calibrated probability."""
        answers, served = await _each(state, request, "/v1/classify", _texts(state, body.input), model=body.model)
        _tag(response, served)
        return {**_ids(request, served), "results": [a.result for a in answers]}

    @app.post("/v1/score", response_model=s.ScoreResponse, tags=["tasks"])
    async def score(body: s.ClassifyRequest, request: Request, response: Response):
        """A regression model's score per text."""
        answers, served = await _each(state, request, "/v1/score", _texts(state, body.input), model=body.model)
        _tag(response, served)
        return {**_ids(request, served), "scores": [a.result for a in answers]}

    @app.post("/v1/rerank", response_model=s.RerankResponse, tags=["tasks"])
    async def rerank(body: s.RerankRequest, request: Request, response: Response):
        """Score each document against the query with a cross-encoder; most relevant first (top_n of them)."""
        _texts(state, body.query, "query")
        if len(body.documents) > s.MAX_ITEMS:
            raise ApiError(422, f"invalid request: documents: {len(body.documents)} documents; send at most "
                           f"{s.MAX_ITEMS} per request", "invalid_request_error")
        _texts(state, body.documents, "documents")
        pairs = [(body.query, doc) for doc in body.documents]
        logged = [{"query": body.query, "document": doc} for doc in body.documents]
        answers, served = await _each(state, request, "/v1/rerank", pairs, log_inputs=logged)
        _tag(response, served)
        order = sorted(range(len(answers)), key=lambda i: -answers[i].result)[: body.top_n]
        results = [{"index": i, "score": answers[i].result, "document": body.documents[i] if body.return_documents
                    else None} for i in order]
        return {**_ids(request, served), "results": results}

    @app.post("/v1/extract", response_model=s.ExtractResponse, tags=["tasks"])
    async def extract(body: s.ClassifyRequest, request: Request, response: Response):
        """Entities (span, label, score) per text from a token-classification model."""
        answers, served = await _each(state, request, "/v1/extract", _texts(state, body.input), model=body.model)
        _tag(response, served)
        return {**_ids(request, served), "entities": [a.result for a in answers]}

    @app.post("/v1/embeddings", response_model=s.EmbeddingResponse, tags=["openai"])
    async def embeddings(body: s.EmbeddingRequest, request: Request, response: Response):
        """OpenAI-compatible embeddings (mean pooled, normalised when the model says so)."""
        texts = _texts(state, body.input)
        answers, served = await _each(state, request, "/v1/embeddings", texts, model=body.model)
        _tag(response, served)
        tokens = sum(len(served.tokenizer(t)["input_ids"]) for t in texts)
        data = [{"object": "embedding", "index": i, "embedding": _encode_vector(a.result, body.encoding_format)}
                for i, a in enumerate(answers)]
        return {**_ids(request, served), "object": "list", "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/v1/chat/completions", response_model=s.ChatResponse, tags=["openai"])
    async def chat(body: s.ChatRequest, request: Request, response: Response):
        """OpenAI-compatible chat completions; `stream: true` answers Server-Sent Events."""
        served = _check(state, "/v1/chat/completions", body.model)
        _texts(state, [m.content for m in body.messages], "messages.content")
        try:
            prompt = handlers.chat_prompt(served, [m.model_dump() for m in body.messages])
        except ValueError as exc:
            raise ApiError(400, str(exc), "invalid_request_error") from None
        params = _params(body, state)
        prompt = _fit_prompt(served, prompt, params, "messages")
        if body.stream:
            return _stream(state, request, body, prompt, params, chat=True)
        return await _complete(state, request, response, "/v1/chat/completions", prompt, params, body, chat=True)

    @app.post("/v1/completions", response_model=s.CompletionResponse, tags=["openai"])
    async def completions(body: s.CompletionRequest, request: Request, response: Response):
        """OpenAI-compatible text completions; `stream: true` answers Server-Sent Events."""
        served = _check(state, "/v1/completions", body.model)
        _texts(state, body.prompt, "prompt")
        params = _params(body, state)
        prompt = _fit_prompt(served, body.prompt, params, "prompt")
        if body.stream:
            return _stream(state, request, body, prompt, params, chat=False)
        return await _complete(state, request, response, "/v1/completions", prompt, params, body, chat=False)

    @app.post("/v1/feedback", response_model=s.FeedbackResponse, tags=["monitoring"],
              responses={404: {"model": s.ErrorResponse}})
    async def feedback(body: s.FeedbackRequest):
        """The true label of a logged prediction: 404 for a request id the log does not hold, 422 for a bad label."""
        return await _store_feedback(state, body)

    return app


# --- request helpers ---------------------------------------------------------------------------------------


def _texts(state: ServingState, value, field: str = "input") -> list[str]:
    try:
        return s.as_list(value, field, max_chars=state.settings.max_input_chars)
    except ValueError as exc:
        raise ApiError(422, f"invalid request: {exc}", "invalid_request_error") from None


def _check(state: ServingState, route: str, model: str | None = None):
    """The model that answers `route` (the one `model` pins, else the champion); 400 for a route it does not serve."""
    pin = state.resolve_model(model)  # an unknown model is a 404 before anything else
    try:
        served = state.check_route(route)
    except RouteNotServed as exc:
        raise ApiError(400, str(exc), "invalid_request_error") from None
    found = state.slot_for_version(pin) if pin is not None else None
    if pin is not None and found is None:  # unloaded since it was resolved
        raise ModelNotFound(f"model {state.name}:{pin} is no longer loaded here")
    return found[1].served if found else served


def _caller(state: ServingState, request: Request) -> str | None:
    return request.headers.get(state.settings.caller_key_header) or None


async def _each(state: ServingState, request: Request, route: str, items: list, log_inputs: list | None = None,
                model: str | None = None):
    """One answer per item (each a batcher item), all from the same role's model for a sticky caller,
    or all from the version the request's `model` pins."""
    _check(state, route, model)
    pin = state.resolve_model(model)
    rid = request.state.request_id
    caller = _caller(state, request) or rid  # all texts of one request go to the same model
    start = time.perf_counter()
    try:
        answers = await asyncio.gather(*(
            state.predict(route, item, caller_key=caller, request_id=rid,
                          log_input=(log_inputs or items)[i], pin=pin) for i, item in enumerate(items)))
    except Exception as exc:
        known = isinstance(exc, ApiError | QueueFull | TimeoutError | NoModel | ModelNotFound | RouteNotServed)
        if not known:  # the model failed on this request (the champion too, after a challenger): 503, never 500
            _log.warning("request %s on %s failed in the model: %s: %s", rid, route, type(exc).__name__, exc)
            exc = ApiError(503, f"the model could not answer this request ({type(exc).__name__}); retry later, and "
                           "if it keeps failing on this input, tell the operator its request id", "server_error",
                           {"Retry-After": "1"})
        slot = state.slots.get(Role.CHAMPION)
        if slot is not None:
            version = str(slot.served.version)
            state.metrics.requests.labels(route, slot.served.name, version, "champion", str(_status_of(exc))).inc()
        if known:
            raise
        raise exc from None
    served = answers[0].served
    role = answers[0].role.value
    state.metrics.requests.labels(route, served.name, str(served.version), role, "200").inc()
    state.metrics.latency.labels(route, served.name, str(served.version), role).observe(time.perf_counter() - start)
    return answers, served


async def _store_feedback(state: ServingState, body) -> dict:
    from tunesmith.monitoring.feedback import FeedbackError, record_feedback

    if state.plog is None:
        # No request is logged, so no request id is known: a 404 that says why (not a server fault, no 5xx).
        raise ApiError(404, f"no logged prediction for request id {body.request_id!r}: this server does not log "
                       "predictions; set serving.predictions.enabled: true to take feedback", "not_found")
    labels = sorted({label for slot in state.slots.values() for label in slot.served.labels.values()}) or None
    await asyncio.to_thread(state.plog.flush)  # a prediction answered a moment ago may still be queued
    try:
        row = await asyncio.to_thread(
            record_feedback, state.plog.url, model=state.name, request_id=body.request_id, index=body.index,
            label=body.label, labels=labels, labeled_by=body.labeled_by, labeled_at=body.labeled_at)
    except FeedbackError as exc:
        raise ApiError(exc.status, str(exc), "invalid_request_error" if exc.status == 422 else "not_found") from None
    return {"request_id": body.request_id, "label": row["label"], "stored": row["new"]}


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


def _encode_vector(vector: list[float], encoding: str):
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    return {QueueFull: 429, TimeoutError: 504, NoModel: 503, RouteNotServed: 400}.get(type(exc), 500)


def _ids(request: Request, served) -> dict:
    return {"model": served.name, "model_version": served.version, "request_id": request.state.request_id}


def _tag(response: Response, served) -> None:
    response.headers["x-model-version"] = served.tag


def _params(body, state: ServingState) -> handlers.GenParams:
    wanted = body.max_completion_tokens or body.max_tokens or min(64, state.settings.max_new_tokens)
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return handlers.GenParams(max_tokens=min(wanted, state.settings.max_new_tokens),
                              temperature=body.temperature, top_p=body.top_p, stop=stop)


async def _complete(state, request, response, route, prompt, params, body, *, chat: bool):
    answers, served = await _each(state, request, route, [(prompt, params)], log_inputs=[_log_input(body, chat)],
                                  model=body.model)
    gen = answers[0].result
    _tag(response, served)
    usage = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
             "total_tokens": gen.prompt_tokens + gen.completion_tokens}
    rid = request.state.request_id
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": gen.text},
                  "finish_reason": gen.finish_reason}
        return {**_ids(request, served), "id": f"chatcmpl-{rid}", "object": "chat.completion",
                "created": int(time.time()), "choices": [choice], "usage": usage}
    choice = {"index": 0, "text": gen.text, "finish_reason": gen.finish_reason, "logprobs": None}
    return {**_ids(request, served), "id": f"cmpl-{rid}", "object": "text_completion",
            "created": int(time.time()), "choices": [choice], "usage": usage}


def _log_input(body, chat: bool):
    return [m.model_dump() for m in body.messages] if chat else body.prompt


def _stream(state: ServingState, request: Request, body, prompt: str, params, *, chat: bool) -> StreamingResponse:
    """SSE chunks in OpenAI's format, ending with `data: [DONE]`; served by the role the canary picks (or the
    pinned version). A finished stream counts for rollback like any answer, and a champion stream is shadowed."""
    if state.streams.locked():
        raise ApiError(429, "too many streams in progress; retry shortly", "rate_limit_error", {"Retry-After": "1"})
    pin = state.resolve_model(body.model)
    if pin is not None:
        served = _check(state, "/v1/chat/completions" if chat else "/v1/completions", body.model)
        role = state.slot_for_version(pin)[0]
    else:
        role = state.role_for(_caller(state, request))
        served = state.slots[role].served if role in state.slots else state.champion()
    rid, created = request.state.request_id, int(time.time())
    kind = "chat.completion.chunk" if chat else "text_completion"
    route = "/v1/chat/completions" if chat else "/v1/completions"
    labels = (route, served.name, str(served.version), role.value)

    def chunk(text: str | None, finish: str | None) -> str:
        if chat:
            delta = {"role": "assistant", "content": text} if text is not None else {}
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        body = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{rid}", "object": kind, "created": created,
                "model": served.name, "model_version": served.version, "request_id": rid, "choices": [choice]}
        return f"data: {json.dumps(body)}\n\n"

    async def events():
        async with state.streams:
            start = time.perf_counter()
            pieces = handlers.stream(served, prompt, params)
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
                gen = handlers.Generation(full, len(served.tokenizer(prompt, add_special_tokens=False)["input_ids"]),
                                          len(served.tokenizer(full, add_special_tokens=False)["input_ids"]), "stop")
                await state.streamed(route, (prompt, params), Answer(gen, served, role, time.perf_counter() - start),
                                     ok=error is None, request_id=rid, log_input=_log_input(body, chat),
                                     pinned=pin is not None)
                if error is None:
                    yield chunk(None, "stop")
                    yield "data: [DONE]\n\n"
                else:
                    yield f"data: {json.dumps({'error': {'message': str(error), 'type': 'server_error'}})}\n\n"
            finally:
                state.metrics.requests.labels(*labels, status if error is None else "500").inc()
                state.metrics.latency.labels(*labels).observe(time.perf_counter() - start)

    headers = {"x-model-version": served.tag, "cache-control": "no-cache"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


# --- errors ---------------------------------------------------------------------------------------------


def _error(status: int, message: str, kind: str, request: Request, headers: dict | None = None) -> JSONResponse:
    rid = getattr(request.state, "request_id", None)
    body = {"error": {"message": message, "type": kind, "code": str(status)}, "request_id": rid}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_handlers(app: FastAPI, state: ServingState) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.message, exc.kind, request, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()))
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "invalid request: " + "; ".join(problems), "invalid_request_error", request)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull):
        retry = str(max(1, math.ceil(exc.retry_after)))
        return _error(429, f"server busy: the request queue is full; retry after {retry}s", "rate_limit_error",
                      request, {"Retry-After": retry})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return _error(exc.status_code, str(exc.detail), kind, request, dict(exc.headers or {}))

    @app.exception_handler(TimeoutError)
    async def timeout(request: Request, exc: TimeoutError):
        return _error(504, str(exc), "timeout", request)

    @app.exception_handler(NoModel)
    async def no_model(request: Request, exc: NoModel):
        return _error(503, str(exc), "unavailable", request, {"Retry-After": "5"})

    @app.exception_handler(ModelNotFound)
    async def unknown_model(request: Request, exc: ModelNotFound):
        return model_not_found(request, str(exc))

    @app.exception_handler(RouteNotServed)
    async def not_served(request: Request, exc: RouteNotServed):
        return _error(400, str(exc), "invalid_request_error", request)


def _metrics_token(settings) -> dict:
    """/metrics takes serving.metrics_token_env's token when that is set (a scraper's; the server token works too)."""
    env = settings.metrics_token_env
    token = os.environ.get(env) if env else None
    if env and not token:
        _log.warning("serving.metrics_token_env names %s, which is not set: /metrics takes the server token only", env)
    return {"/metrics": (token, env)} if token else {}


def _count_rejected(state: ServingState):
    return lambda reason: state.metrics.rejected.labels(reason).inc()

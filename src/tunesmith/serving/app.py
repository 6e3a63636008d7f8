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
import inspect
import logging
import math
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunesmith.families import routes as family_routes
from tunesmith.serving import schemas as s
from tunesmith.serving.batching import QueueFull
from tunesmith.serving.kit import ApiError, each, ids, tag, texts
from tunesmith.serving.middleware import BodyLimit, RequestContext
from tunesmith.serving.model_routes import add_model_routes, model_not_found
from tunesmith.serving.router import Role
from tunesmith.serving.state import ModelNotFound, NoModel, RouteNotServed, ServingState

_log = logging.getLogger("tunesmith.serving")
OPEN_ROUTES = ("/healthz", "/readyz", "/review/login", "/review/healthz")  # /review: review.web; /metrics needs a token


def create_app(name: str, *, settings, store=None, prediction_log=None, state: ServingState | None = None,
               prices=None) -> FastAPI:
    """A server for registered model `name` (its champion, and challenger when `settings.challenger`); `prices` (the
    config's `cost:`) turn each version's busy time into `tunesmith_cost_per_1k_inferences`."""
    state = state or ServingState(name, settings=settings, store=store, prediction_log=prediction_log, prices=prices)

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
        """A champion is loaded and taking requests; lists what each role serves and where rollback state is shared."""
        champion = state.champion()
        models = {role.value: slot.served.tag for role, slot in state.slots.items()}
        shared = state.shared and {"url": state.shared.url, "reachable": state.shared.reachable}  # no password
        return {"status": "ready", "model": champion.name, "model_version": champion.version, "task":
                champion.task, "serving": models, "canary_percent": state.settings.canary.percent
                if Role.CHALLENGER in state.slots else 0, "shadow": state.settings.shadow, "shared_state": shared,
                "engines": {role.value: f"{slot.served.upstream.base_url} ({slot.served.upstream.model})"
                            for role, slot in state.slots.items() if slot.served.upstream is not None} or None}

    @app.get("/v1/rollout", tags=["health"])
    async def rollout() -> dict:
        """The live rollout (token): what each role serves, the canary share, and this server's last 50 events
        (loads, promotions picked up, rollbacks with their reasons), newest last."""
        return {"model": state.name, "serving": {role.value: slot.served.version for role, slot in state.slots.items()},
                "canary_percent": state.settings.canary.percent if Role.CHALLENGER in state.slots else 0,
                "shadow": state.settings.shadow, "events": state.events[-50:]}

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus exposition of every tunesmith metric."""
        for slot in state.slots.values():
            state.metrics.queue_depth.labels(slot.served.name, str(slot.served.version)).set(slot.batcher.depth)
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for route in family_routes().values():  # every registered family's routes; a model answers its own
        if route.mount is not None:
            route.mount(app, state)
        else:
            _mount(app, state, route)

    @app.post("/v1/feedback", response_model=s.FeedbackResponse, tags=["monitoring"],
              responses={404: {"model": s.ErrorResponse}})
    async def feedback(body: s.FeedbackRequest):
        """Feedback on a logged prediction (the family's shape): 404 for a request id the log does not hold, 422 for
        a value the model's family does not take."""
        return await _store_feedback(state, body)

    return app


# --- request helpers ---------------------------------------------------------------------------------------


async def _store_feedback(state: ServingState, body) -> dict:
    from tunesmith.monitoring.feedback import FeedbackError, record_feedback

    if state.plog is None:
        # No request is logged, so no request id is known: a 404 that says why (not a server fault, no 5xx).
        raise ApiError(404, f"no logged prediction for request id {body.request_id!r}: this server does not log "
                       "predictions; set serving.predictions.enabled: true to take feedback", "not_found")
    served = state.champion()
    hooks = served.family.feedback
    if hooks is None:
        raise ApiError(400, f"model {served.tag} is a {served.task} model, whose family takes no feedback yet",
                       "invalid_request_error")
    if body.label is not None and body.value is None and not served.family.labeled:
        raise ApiError(422, f"invalid request: {served.task} feedback goes in `value`: {hooks.shape}",
                       "invalid_request_error")
    labels = sorted({label for slot in state.slots.values() for label in slot.served.labels.values()}) or None
    await asyncio.to_thread(state.plog.flush)  # a prediction answered a moment ago may still be queued
    try:
        row = await asyncio.to_thread(
            record_feedback, state.plog.url, model=state.name, request_id=body.request_id, index=body.index,
            value=body.value if body.value is not None else body.label, labels=labels, labeled_by=body.labeled_by,
            labeled_at=body.labeled_at, hooks=hooks)
    except FeedbackError as exc:
        raise ApiError(exc.status, str(exc), "invalid_request_error" if exc.status == 422 else "not_found") from None
    return {"request_id": body.request_id, "label": row["label"], "value": row["stored"], "stored": row["new"]}


def _mount(app: FastAPI, state: ServingState, route) -> None:
    """A family's route as a FastAPI endpoint: checked texts -> batch items -> the answering model -> the body."""

    async def endpoint(body, request: Request, response: Response):
        try:
            items, logged = route.items(body, lambda value, field="input": texts(state, value, field))
        except ValueError as exc:
            raise ApiError(422, f"invalid request: {exc}", "invalid_request_error") from None
        answers, served = await each(state, request, route.path, items, log_inputs=logged,
                                     model=getattr(body, "model", None))
        tag(response, served)
        return {**ids(request, served), **route.respond(answers, body, served)}

    endpoint.__signature__ = inspect.Signature([  # FastAPI reads the body model from the signature
        inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=route.request),
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter("response", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Response)])
    endpoint.__doc__ = route.summary
    app.post(route.path, response_model=route.response, tags=list(route.tags), summary=route.summary or None,
             name=route.path.rsplit("/", 1)[-1])(endpoint)


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

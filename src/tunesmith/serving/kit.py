"""What every route of the serving app shares: error answers, input checks, routing a request's items to the model
that answers them (with metrics and the 503 fallback), and the ids every answer carries.

    items = texts(state, body.input)                         # 422 for empty, too many or too long texts
    answers, served = await each(state, request, "/v1/classify", items, model=body.model)
    return {**ids(request, served), "results": [a.result for a in answers]}

A family's routes (tunesmith.contracts.Route) are built from these; the app mounts every registered family's.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import Request, Response

from tunesmith.serving import schemas as s
from tunesmith.serving.batching import QueueFull
from tunesmith.serving.router import Role
from tunesmith.serving.state import ModelNotFound, NoModel, RouteNotServed, ServingState
from tunesmith.serving.upstream import UpstreamError

_log = logging.getLogger("tunesmith.serving")


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None):
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}
        super().__init__(message)


def texts(state: ServingState, value, field: str = "input") -> list[str]:
    try:
        return s.as_list(value, field, max_chars=state.settings.max_input_chars)
    except ValueError as exc:
        raise ApiError(422, f"invalid request: {exc}", "invalid_request_error") from None


def check(state: ServingState, route: str, model: str | None = None):
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


def caller(state: ServingState, request: Request) -> str | None:
    return request.headers.get(state.settings.caller_key_header) or None


async def each(state: ServingState, request: Request, route: str, items: list, log_inputs: list | None = None,
                model: str | None = None):
    """One answer per item (each a batcher item), all from the same role's model for a sticky caller,
    or all from the version the request's `model` pins."""
    check(state, route, model)
    pin = state.resolve_model(model)
    rid = request.state.request_id
    key = caller(state, request) or rid  # all texts of one request go to the same model
    start = time.perf_counter()
    try:
        answers = await asyncio.gather(*(
            state.predict(route, item, caller_key=key, request_id=rid,
                          log_input=(log_inputs or items)[i], pin=pin, idx=i) for i, item in enumerate(items)))
    except Exception as exc:
        known = isinstance(exc, ApiError | QueueFull | TimeoutError | NoModel | ModelNotFound | RouteNotServed)
        if isinstance(exc, UpstreamError) and exc.kind == "refused":  # the engine refused the input: the caller's
            exc = ApiError(400, f"invalid request: {exc}", "invalid_request_error")
        elif not known:  # the model failed on this request (the champion too, after a challenger): 503, never 500
            _log.warning("request %s on %s failed in the model: %s: %s", rid, route, type(exc).__name__, exc)
            exc = ApiError(503, f"the model could not answer this request ({type(exc).__name__}); retry later, and "
                           "if it keeps failing on this input, tell the operator its request id", "server_error",
                           {"Retry-After": "1"})
        slot = state.slots.get(Role.CHAMPION)
        if slot is not None:
            version = str(slot.served.version)
            state.metrics.requests.labels(route, slot.served.name, version, "champion", str(status_of(exc))).inc()
        if known:
            raise
        raise exc from None
    served = answers[0].served
    role = answers[0].role.value
    state.metrics.requests.labels(route, served.name, str(served.version), role, "200").inc()
    state.metrics.latency.labels(route, served.name, str(served.version), role).observe(time.perf_counter() - start)
    return answers, served


def status_of(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    return {QueueFull: 429, TimeoutError: 504, NoModel: 503, RouteNotServed: 400}.get(type(exc), 500)


def ids(request: Request, served) -> dict:
    return {"model": served.name, "model_version": served.version, "request_id": request.state.request_id}


def tag(response: Response, served) -> None:
    response.headers["x-model-version"] = served.tag

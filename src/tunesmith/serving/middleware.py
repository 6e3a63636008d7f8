"""Plain ASGI middleware (cheaper per request than Starlette's BaseHTTPMiddleware): request ids, bearer auth,
and the body size limit (413 before the body is read past the limit)."""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Callable
from http.cookies import SimpleCookie

from starlette.exceptions import HTTPException

TOKEN_COOKIE = "tunesmith_token"  # set by the review page's login form


class BodyLimit:
    """Refuse bodies over `max_bytes` (by Content-Length, or while a chunked body streams in) with 413."""

    def __init__(self, app, max_bytes: int, on_reject: Callable[[str], None] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._reject(send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if self.on_reject is not None:
                        self.on_reject("body_too_large")
                    raise _TooBig
            return message

        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooBig:  # raised outside FastAPI's handlers (e.g. a route that streams the body itself)
            if not started:
                await self._send_413(send)

    async def _reject(self, send):
        if self.on_reject is not None:
            self.on_reject("body_too_large")
        await self._send_413(send)

    async def _send_413(self, send):
        body = json.dumps({"error": {"message": f"request body larger than {self.max_bytes} bytes",
                                     "type": "invalid_request_error", "code": "413"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooBig(HTTPException):
    """An HTTPException so FastAPI's body parsing lets it through (it turns other errors into 400)."""

    def __init__(self):
        super().__init__(status_code=413, detail="request body too large")


def _json_response(status: int, body: dict, headers: list[tuple[bytes, bytes]]) -> tuple[dict, dict]:
    data = json.dumps(body).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                         *headers]}
    return start, {"type": "http.response.body", "body": data}


class RequestContext:
    """Give each request an id (the caller's `x-request-id` if sane, else a new one) in `request.state.request_id`
    and the `x-request-id` response header; with a token configured, answer 401 on every path but `open_paths`."""

    def __init__(self, app, token: str, token_env: str, open_paths: tuple[str, ...],
                 on_reject: Callable[[str], None] | None = None, path_tokens: dict[str, tuple[str, str]] | None = None):
        self.app = app
        self.token = token.encode()
        self.token_env = token_env
        self.open_paths = open_paths
        self.on_reject = on_reject
        # path -> (token, its env var): that path takes its own token (the server's token works there too)
        self.path_tokens = {p: (t.encode(), env) for p, (t, env) in (path_tokens or {}).items() if t}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if 0 < len(given) <= 64 and given.isascii() and given.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        path = scope.get("path")
        own = self.path_tokens.get(path)
        if own is not None:
            denied = not self._authorized(headers, own[0]) and not (self.token and self._authorized(headers))
            env = own[1]
        else:
            denied = bool(self.token) and path not in self.open_paths and not self._authorized(headers)
            env = self.token_env
        if denied:
            if self.on_reject is not None:
                self.on_reject("unauthorized")
            message = (f"missing or wrong bearer token (Authorization: Bearer $TOKEN; the server reads it from "
                       f"{env})")
            body = {"error": {"message": message, "type": "authentication_error", "code": "401"}, "request_id": rid}
            start, data = _json_response(401, body, [rid_header, (b"www-authenticate", b"Bearer")])
            await send(start)
            return await send(data)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), rid_header]}
            await send(message)

        await self.app(scope, receive, send_with_id)

    def _authorized(self, headers: dict, token: bytes | None = None) -> bool:
        token = token or self.token
        scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), token):
            return True
        if token != self.token:
            return False  # a path's own token comes in the header only
        # A browser can't send the header on a page load: the review page's /review/login sets this cookie.
        cookie = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1")).get(TOKEN_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.value.encode("latin-1"), token)

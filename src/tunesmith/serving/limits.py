"""Request body size limit as plain ASGI middleware: 413 before the body is read past the limit."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.exceptions import HTTPException


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

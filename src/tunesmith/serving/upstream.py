"""An upstream engine speaking the OpenAI API (vLLM, SGLang, TGI, ...): JSON answers and Server-Sent Events, async.

    engine = Upstream("http://gpu-1:8000/v1", model="support-bot-v3", timeout_s=120)
    body = await engine.post("/chat/completions", {"messages": [...], "max_tokens": 64})
    async for event in engine.events("/chat/completions", {..., "stream": True}): ...
    await engine.aclose()

Every failure is an `UpstreamError` whose `kind` says what broke (connect, timeout, status, refused, broken: the
answer broke off, bad_response): the server counts it (tunesmith_engine_errors_total) and judges a challenger on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

ERROR_KINDS = ("connect", "timeout", "status", "refused", "broken", "bad_response")


class UpstreamError(RuntimeError):
    """The engine did not answer: `kind` one of ERROR_KINDS; `status` its HTTP status when it sent one. `refused`
    (400/413/422) is the request's fault (a prompt beyond the engine's context), not the engine's."""

    def __init__(self, kind: str, message: str, status: int | None = None):
        self.kind, self.status = kind, status
        super().__init__(message)


@dataclass
class Upstream:
    """One engine endpoint and the name it serves one model version under; one connection pool per endpoint."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 120
    connect_timeout_s: float = 5
    max_connections: int = 256
    transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)  # tests: httpx.MockTransport
    _client: httpx.AsyncClient | None = field(default=None, repr=False)
    _active: int = field(default=0, repr=False)  # requests in flight
    _retired: bool = field(default=False, repr=False)  # close the pool when the last one ends

    @classmethod
    def from_config(cls, config, name: str, version: int) -> Upstream:
        """The engine of `name` version `version` in a `serving.upstream` config; the key from its env var."""
        base_url, model = config.target(name, version)
        key = None
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ValueError(f"serving.upstream.api_key_env: the environment variable {config.api_key_env} is "
                                 "not set; export the engine's API key there (or remove api_key_env)")
        return cls(base_url, model, key, config.timeout_s, config.connect_timeout_s, config.max_connections)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # made on first use, inside the server's event loop
            headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(
                base_url=self.base_url, headers=headers, trust_env=False,
                timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
                limits=httpx.Limits(max_connections=self.max_connections), transport=self.transport)
        return self._client

    async def post(self, path: str, payload: dict) -> dict:
        """The engine's JSON answer to `payload` (its `model` filled in)."""
        self._active += 1
        try:
            response = await self.client.post(path.lstrip("/"), json={**payload, "model": self.model})
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from None
        finally:
            await self._done()
        if response.status_code != 200:
            raise _status_error(response.status_code, response.text, self.base_url)
        try:
            return response.json()
        except ValueError:
            raise UpstreamError("bad_response", f"engine {self.base_url} answered 200 with a body that is not "
                                "JSON") from None

    async def events(self, path: str, payload: dict) -> AsyncIterator[dict]:
        """Each `data:` event of a streamed answer as JSON, until `data: [DONE]`. A stream that ends before [DONE]
        and before any choice finished (the engine died, the connection dropped) raises `broken`."""
        finished = False
        self._active += 1
        try:
            async with self.client.stream("POST", path.lstrip("/"), json={**payload, "model": self.model,
                                                                          "stream": True}) as response:
                if response.status_code != 200:
                    raise _status_error(response.status_code, (await response.aread()).decode(errors="replace"),
                                        self.base_url)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # SSE comments, event names, blank separators
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    event = _event(data, self.base_url)
                    finished = finished or any(c.get("finish_reason") for c in event.get("choices") or ())
                    yield event
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from None
        finally:
            await self._done()
        if not finished:
            raise UpstreamError("broken", f"engine {self.base_url} closed the stream before it finished")

    async def retire(self) -> None:
        """No new requests will come (the version left its slot): close the pool once those in flight end."""
        self._retired = True
        if self._active == 0:
            await self.aclose()

    async def _done(self) -> None:
        self._active -= 1
        if self._retired and self._active == 0:
            await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _event(data: str, base_url: str) -> dict:
    try:
        event = json.loads(data)
    except ValueError:
        raise UpstreamError("bad_response", f"engine {base_url} sent an event that is not JSON: {data[:200]}") from None
    if not isinstance(event, dict):
        raise UpstreamError("bad_response", f"engine {base_url} sent an event that is not an object: {data[:200]}")
    if "error" in event:  # an in-band error (the engine failed mid-stream and said so)
        error = event["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise UpstreamError("broken", f"engine {base_url} failed mid-stream: {message}")
    return event


def _transport_error(exc: httpx.HTTPError, base_url: str) -> UpstreamError:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError("timeout", f"engine {base_url} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError):
        return UpstreamError("connect", f"cannot reach engine {base_url}: {exc}")
    return UpstreamError("broken", f"engine {base_url} broke off the answer: {type(exc).__name__}: {exc}")


def _status_error(status: int, text: str, base_url: str) -> UpstreamError:
    try:
        detail = json.loads(text).get("error", {})
        detail = detail.get("message", detail) if isinstance(detail, dict) else detail
    except (ValueError, AttributeError):
        detail = text
    kind = "refused" if status in (400, 413, 422) else "status"
    return UpstreamError(kind, f"engine {base_url} answered {status}: {str(detail)[:500]}", status)

"""What every server-rendered tunesmith page needs to be safe in a browser (the review page, the console).

    guard = PageGuard(authorized=lambda request: ..., allowed_hosts=["console.internal"], open_paths=("/login",))
    guard.install(app)                              # the middleware below, on every request
    guard.csrf_input(request, subject)              # a hidden form field; guard.csrf_refused(request, form, subject)

The middleware gives each browser a random session id (an httponly, same-site cookie) and each response a fresh
nonce; refuses other Host names (`allowed_hosts`, against DNS rebinding) and state-changing requests from another
origin (Origin, else Referer, must name this Host); sends a GET for a page to `/login` and anything else to a 401
while `authorized(request)` is false; and sets X-Frame-Options: DENY, nosniff, same-origin referrers and a
nonce-based CSP (no 'unsafe-inline', no inline style attributes). A form's CSRF token is an HMAC, under a
per-process secret, of the session id and the signed-in subject; a request that authenticates with an
`Authorization` header needs none (a browser never adds that header by itself).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

SESSION_COOKIE = "tunesmith_review_sid"  # a random per-browser id the CSRF tokens are bound to
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def root(request: Request) -> str:
    """Where the app is mounted ('' at the top, '/review' under the serving app)."""
    return request.scope.get("root_path", "").rstrip("/")


class PageGuard:
    def __init__(self, *, authorized: Callable[[Request], bool], allowed_hosts: list[str] | None = None,
                 open_paths: tuple[str, ...] = ("/login", "/healthz")):
        self.authorized = authorized
        self.hosts = None if not allowed_hosts or "*" in allowed_hosts else \
            {h.lower().strip("[]") for h in allowed_hosts}
        self.open_paths = open_paths
        self.secret = secrets.token_bytes(32)  # per process: CSRF tokens die with it (a reload renders fresh ones)

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def guard(request: Request, call_next):
            path = request.url.path[len(root(request)):] or "/"
            sid = request.cookies.get(SESSION_COOKIE, "")
            new_sid = not (20 <= len(sid) <= 64 and sid.replace("-", "").replace("_", "").isalnum())
            request.state.sid = secrets.token_urlsafe(24) if new_sid else sid
            request.state.nonce = nonce = secrets.token_urlsafe(16)
            if self.hosts is not None and host_name(request.headers.get("host", "")) not in self.hosts:
                response = bad("host: this page does not answer to that Host name (allowed_hosts)", 403)
            elif request.method not in SAFE_METHODS and not same_origin(request):
                response = bad("origin: a form posted from another site is refused", 403)
            elif path not in self.open_paths and not self.authorized(request):
                if request.method == "GET" and not path.startswith("/api"):
                    response = RedirectResponse(f"{root(request)}/login", status_code=303)
                else:
                    response = JSONResponse({"error": {"message": "missing or wrong bearer token",
                                                       "type": "authentication_error", "code": "401"}},
                                            status_code=401, headers={"www-authenticate": "Bearer"})
            else:
                response = await call_next(request)
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "same-origin"
            response.headers.setdefault("Content-Security-Policy", (
                f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self'; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"))
            if new_sid:
                response.set_cookie(SESSION_COOKIE, request.state.sid, httponly=True, samesite="strict", path="/")
            return response

    def add_login(self, app: FastAPI, *, tokens, render: Callable[[Request, str], Response],
                  label: str = "Access token") -> None:
        """GET /login (a token form) and POST /login: a right token sets the cookie the serving app accepts too."""
        from fastapi.responses import HTMLResponse

        from tunesmith.serving.middleware import TOKEN_COOKIE

        @app.get("/healthz")
        async def healthz() -> dict:
            return {"status": "ok"}

        @app.get("/login", response_class=HTMLResponse)
        async def login_form(request: Request):
            return render(request, f"<div class='card'><form method='post' action='{root(request)}/login'>"
                                   f"{self.csrf_input(request, None)}<label>{label} <input type='password' "
                                   "name='token' id='token' autofocus></label> <button>Sign in</button></form></div>")

        @app.post("/login")
        async def login(request: Request):
            form = await read_form(request)
            if (refused := self.csrf_refused(request, form, None)) is not None:
                return refused
            match = match_token(tokens, form.get("token", ""))
            if not match:
                return JSONResponse({"error": {"message": "wrong token", "type": "authentication_error",
                                               "code": "401"}}, status_code=401)
            response = RedirectResponse(f"{root(request)}/", status_code=303)
            response.set_cookie(TOKEN_COOKIE, match, httponly=True, samesite="strict", path="/")
            return response

    def csrf(self, request: Request, subject: str | None) -> str:
        message = f"{request.state.sid}|{subject or ''}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def csrf_input(self, request: Request, subject: str | None) -> str:
        return f"<input type='hidden' name='csrf' value='{self.csrf(request, subject)}'>"

    def csrf_refused(self, request: Request, form: dict, subject: str | None, *, by_header: bool = False
                     ) -> JSONResponse | None:
        """403 for a form without this session's CSRF token (None: fine)."""
        if by_header or hmac.compare_digest(form.get("csrf", "").encode(), self.csrf(request, subject).encode()):
            return None
        return bad("csrf: missing or stale form token; reload the page and try again", 403)


def match_token(tokens, given: str) -> str | None:
    """The configured token equal to `given` (every one compared in constant time), or None."""
    found = None
    for tok in tokens:
        if hmac.compare_digest(given.encode(), tok.encode()):
            found = tok
    return found


def host_name(host: str) -> str:
    """The name in a Host header, without the port ([::1]:8100 -> ::1)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def same_origin(request: Request) -> bool:
    """Origin (else Referer) names this Host. Neither header: not a browser form (the CSRF token still applies)."""
    source = request.headers.get("origin")
    if source is None:
        source = request.headers.get("referer")
        if source is None:
            return True
    netloc = urlsplit(source).netloc.lower()  # "null" (a sandboxed frame, a file:// page) has none: refused
    return bool(netloc) and netloc == request.headers.get("host", "").lower()


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form body (parsed here so the pages need no multipart dependency)."""
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": str(status)}},
                        status_code=status)

"""The review page: one item at a time, the model's guess and confidence, label buttons and keyboard shortcuts.

    app = create_review_app("sqlite:///.tunesmith/predictions.db", "sentiment", labels=["neg", "pos"])
    mount_review(serving_app, url, "sentiment")   # the same page under the serving app at /review

Plain server-rendered HTML with a few lines of vanilla JS for the shortcuts (Enter/a accept, 1-9 pick a label,
s skip, u undo); every form also works without JS. Each POST commits before the redirect, so what a reviewer saw
saved is on disk. With a token (the serving token's env var), pages need `Authorization: Bearer` or the cookie
that /login sets.
"""

from __future__ import annotations

import hmac
import json
from html import escape
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from tunesmith.review import store
from tunesmith.review.agreement import agreement
from tunesmith.review.store import Action
from tunesmith.serving.middleware import TOKEN_COOKIE  # the serving app accepts the same cookie

REVIEWER_COOKIE = "tunesmith_reviewer"
OPEN_PATHS = ("/login", "/healthz")

CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#243b55;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header a{color:#cfe3ff} main{max-width:860px;margin:24px auto;padding:0 16px}
.card{background:#fff;border-radius:8px;padding:20px 24px;box-shadow:0 1px 4px #0002;margin-bottom:16px}
#item-text{font-size:1.3em;line-height:1.5;white-space:pre-wrap;margin:8px 0 16px}
.meta{color:#555} .badge{background:#e3e8f0;border-radius:4px;padding:2px 8px;font-size:.85em}
#guess{font-weight:700;color:#0b5cad} .bar{height:8px;background:#dde3ea;border-radius:4px;margin:6px 0 12px}
.bar span{display:block;height:8px;background:#0b5cad;border-radius:4px}
button{font-size:1em;padding:8px 14px;margin:4px;border-radius:6px;border:1px solid #9aa7b8;background:#fff;cursor:pointer}
button.primary{background:#1b7f3b;color:#fff;border-color:#1b7f3b} kbd{background:#eef;border:1px solid #99a;
border-radius:3px;padding:0 4px;font-size:.85em;color:#1d2330} #flash{color:#1b7f3b} table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:6px;text-align:left}
"""

KEYS_JS = """
let sent = false;
document.addEventListener('keydown', (e) => {
  const tag = (e.target.tagName || '').toLowerCase();
  if (tag === 'input' || tag === 'textarea' || e.ctrlKey || e.metaKey || e.altKey || sent) return;
  let id = null;
  if (e.key === 'Enter' || e.key === 'a') id = 'accept';
  else if (e.key === 's') id = 'skip';
  else if (e.key === 'u') id = 'undo';
  else if (/^[1-9]$/.test(e.key)) id = 'label-' + e.key;
  const button = id && document.getElementById(id);
  if (button) { e.preventDefault(); sent = true; button.click(); }
});
"""


def _page(title: str, body: str, root: str, reviewer: str | None) -> HTMLResponse:
    who = f"reviewer: <b id='reviewer-name'>{escape(reviewer)}</b>" if reviewer else "no reviewer set"
    html = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><header><b>tunesmith review</b><span>{escape(title)}</span>"
            f"<span>{who}</span><a href='{root}/'>queue</a><a href='{root}/agreement'>agreement</a></header>"
            f"<main>{body}</main><script>{KEYS_JS}</script></body></html>")
    return HTMLResponse(html)


def create_review_app(url: str, model: str, *, labels: list[str] | None = None, token: str | None = None) -> FastAPI:
    """A FastAPI app serving `model`'s review queue from the database at `url`."""
    app = FastAPI(title=f"tunesmith review: {model}", docs_url=None, redoc_url=None, openapi_url=None)
    store.engine(url)  # create the tables before the first request
    fixed_labels = list(labels) if labels else None
    seen_labels: dict[int, list[str]] = {}  # queue size -> its labels: rescanned only when items were added

    def labels_for(total: int) -> list[str]:
        if total not in seen_labels:
            seen_labels.clear()
            seen_labels[total] = _labels(url, model, fixed_labels)
        return seen_labels[total]

    def root(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    def reviewer_of(request: Request, form: dict | None = None) -> str | None:
        name = ((form or {}).get("reviewer") or request.query_params.get("reviewer")
                or request.headers.get("x-reviewer") or request.cookies.get(REVIEWER_COOKIE) or "")
        return name.strip()[:100] or None

    @app.middleware("http")
    async def auth(request: Request, call_next):
        path = request.url.path[len(root(request)):] or "/"
        if token and path not in OPEN_PATHS and not _authorized(request, token):
            if request.method == "GET" and not path.startswith("/api"):
                return RedirectResponse(f"{root(request)}/login", status_code=303)
            return JSONResponse({"error": {"message": "missing or wrong bearer token", "type": "authentication_error",
                                           "code": "401"}}, status_code=401, headers={"www-authenticate": "Bearer"})
        return await call_next(request)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request):
        body = (f"<div class='card'><form method='post' action='{root(request)}/login'><label>Access token "
                "<input type='password' name='token' id='token' autofocus></label> <button>Sign in</button></form></div>")
        return _page(model, body, root(request), None)

    @app.post("/login")
    async def login(request: Request):
        given = (await _form(request)).get("token", "")
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": {"message": "wrong token", "type": "authentication_error", "code": "401"}},
                                status_code=401)
        response = RedirectResponse(f"{root(request)}/", status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @app.get("/", response_class=HTMLResponse)
    def queue(request: Request):
        reviewer = reviewer_of(request)
        r = root(request)
        name_form = (f"<form method='get' action='{r}/' class='card' id='reviewer-form'><label>Your name "
                     f"<input name='reviewer' id='reviewer' value='{escape(reviewer or '')}' required></label> "
                     "<button>Start reviewing</button></form>")
        if not reviewer:
            return _page(model, name_form, r, None)
        item = store.next_item(url, model, reviewer=reviewer)
        done = store.progress(url, model, reviewer=reviewer)
        flash = escape(request.query_params.get("saved", ""))
        header = (f"<p class='meta'><span id='progress'>{done['mine']} / {done['total']} reviewed by you</span> · "
                  f"{done['labeled']} labeled by anyone · <span id='flash'>{flash}</span></p>")
        undo = (f"<form method='post' action='{r}/undo' style='display:inline'><input type='hidden' name='reviewer' "
                f"value='{escape(reviewer)}'><button id='undo'>Undo <kbd>u</kbd></button></form>")
        if item is None:
            body = f"{header}<div class='card' id='done'><h2>Queue empty</h2><p>Nothing left for you to review.</p>{undo}</div>"
        else:
            body = header + _item_card(item, labels_for(done["total"]), reviewer, r) + undo
        response = _page(model, body, r, reviewer)
        response.set_cookie(REVIEWER_COOKIE, reviewer, samesite="strict", path="/")
        return response

    @app.post("/label")
    async def label(request: Request):
        form = await _form(request)
        # the database work runs off the event loop: mounted in the serving app, it must not stall predictions
        return await run_in_threadpool(label_sync, request, form)

    def label_sync(request: Request, form: dict):
        reviewer = reviewer_of(request, form)
        if not reviewer:
            return _bad("reviewer: give your name (the form's reviewer field or an x-reviewer header)")
        try:
            item_id = int(form.get("item_id", ""))
        except ValueError:
            return _bad("item_id: missing or not a number")
        item = store.get_item(url, item_id)
        if item is None or item["model"] != model:
            return _bad(f"item_id: no review item {item_id} for {model}", 404)
        choice = form.get("choice", "")
        if choice == "accept":
            action, value = Action.ACCEPT, item["guess"]
        elif choice == "skip":
            action, value = Action.SKIP, None
        elif choice.startswith("label:") and choice[6:]:
            value = choice[6:]
            action = Action.ACCEPT if value == item["guess"] else Action.RELABEL
        else:
            return _bad("choice: one of accept, skip, label:<LABEL>")
        if value is None and action is Action.ACCEPT:
            return _bad("choice: this item has no guess to accept; pick a label")
        _record_once(url, model, item_id, value, reviewer, action)
        saved = f"saved {action.value}" + (f": {value}" if value else "") + f" (item {item_id})"
        return RedirectResponse(f"{root(request)}/?saved={quote(saved)}", status_code=303)

    @app.post("/undo")
    async def undo(request: Request):
        reviewer = reviewer_of(request, await _form(request))
        if not reviewer:
            return _bad("reviewer: give your name")
        item_id = await run_in_threadpool(store.undo_last, url, model, reviewer=reviewer)
        saved = f"undid your label on item {item_id}" if item_id is not None else "nothing to undo"
        return RedirectResponse(f"{root(request)}/?saved={quote(saved)}", status_code=303)

    @app.get("/agreement", response_class=HTMLResponse)
    def agreement_page(request: Request):
        return _page(model, _agreement_html(agreement(url, model)), root(request), reviewer_of(request))

    @app.get("/api/progress")
    def api_progress(request: Request) -> dict:
        return store.progress(url, model, reviewer=reviewer_of(request))

    @app.get("/api/agreement")
    def api_agreement() -> dict:
        return agreement(url, model)

    @app.get("/api/reviewed")
    def api_reviewed() -> list[dict]:
        return store.reviewed_labels(url, model)

    return app


def mount_review(app: FastAPI, url: str, model: str, *, labels: list[str] | None = None, token: str | None = None,
                 path: str = "/review") -> None:
    """Serve the review page under another app (the serving app) at `path`."""
    app.mount(path, create_review_app(url, model, labels=labels, token=token))


def _authorized(request: Request, token: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
        return True
    return hmac.compare_digest(request.cookies.get(TOKEN_COOKIE, "").encode(), token.encode())


async def _form(request: Request) -> dict[str, str]:
    """A url-encoded form body (parsed here so the page needs no multipart dependency)."""
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": str(status)}},
                        status_code=status)


def _record_once(url, model, item_id, value, reviewer, action) -> None:
    """A double-submitted form (two key presses before the page changed) records one label, not two."""
    mine = store.latest_per_reviewer([r for r in store.label_rows(url, model) if r["item_id"] == item_id])
    last = mine.get(item_id, {}).get(reviewer)
    if last is not None and last["label"] == value and last["action"] == action.value:
        return
    store.add_label(url, item_id, label=value, reviewer=reviewer, action=action)


def _labels(url: str, model: str, fixed: list[str] | None) -> list[str]:
    """The label buttons, in a fixed order so a digit key means the same label on every item."""
    if fixed:
        return fixed
    seen: set[str] = set()
    for it in store.list_items(url, model):
        seen |= {v for v in (it["guess"], it["context"].get("given"), it["context"].get("shadow_label")) if v}
        seen |= set((it["scores"] or {}).keys())
    return sorted(seen)


def _item_card(item: dict, labels: list[str], reviewer: str, root: str) -> str:
    conf = item["confidence"]
    conf_html = (f"<span id='confidence'>{conf:.1%}</span><div class='bar'><span style='width:{conf * 100:.1f}%'>"
                 "</span></div>") if conf is not None else "<span id='confidence'>n/a</span>"
    ctx = item["context"]
    notes = []
    if item["source"] == store.Source.SHADOW_DISAGREEMENT.value:
        notes.append(f"shadow (v{ctx.get('shadow_version')}) said <b>{escape(str(ctx.get('shadow_label')))}</b>")
    if item["source"] == store.Source.LABEL_ISSUE.value:
        p = ctx.get("given_label_probability")
        notes.append(f"training label <b>{escape(str(ctx.get('given')))}</b> at {escape(str(ctx.get('row')))}"
                     + (f" (probe gives it {p:.0%})" if isinstance(p, int | float) else "") + "; guess is the probe's")
    buttons = "".join(
        f"<button type='submit' name='choice' value='label:{escape(lab)}' id='label-{i}' data-label='{escape(lab)}'>"
        f"<kbd>{i}</kbd> {escape(lab)}</button>" if i <= 9 else
        f"<button type='submit' name='choice' value='label:{escape(lab)}' data-label='{escape(lab)}'>{escape(lab)}</button>"
        for i, lab in enumerate(labels, 1))
    version = f" v{item['model_version']}" if item["model_version"] is not None else ""
    accept = ("<button type='submit' name='choice' value='accept' id='accept' class='primary'>Accept guess "
              "<kbd>Enter</kbd>/<kbd>a</kbd></button>") if item["guess"] else ""
    return (f"<div class='card' id='item' data-item-id='{item['id']}'><span class='badge' id='source'>"
            f"{escape(item['source'])}</span> <span class='meta'>item {item['id']}{escape(version)}</span>"
            f"<div id='item-text'>{escape(item['text'])}</div>"
            f"<div>model's guess: <span id='guess'>{escape(item['guess'] or '-')}</span> · confidence {conf_html}</div>"
            f"<p class='meta'>{'; '.join(notes)}</p>"
            f"<form method='post' action='{root}/label' id='label-form'><input type='hidden' name='item_id' "
            f"value='{item['id']}'><input type='hidden' name='reviewer' value='{escape(reviewer)}'>{accept}"
            f"<div id='labels'>{buttons}</div><button type='submit' name='choice' value='skip' id='skip'>Skip "
            "<kbd>s</kbd></button></form></div>")


def _agreement_html(report: dict) -> str:
    rows = "".join(
        f"<tr><td>{escape(' & '.join(p['reviewers']))}</td><td>{p['items']}</td><td>{p['percent_agreement']:.1%}</td>"
        f"<td>{_kappa(p['kappa'])}</td></tr>" for p in report["pairs"])
    pairs = (f"<table id='pairs'><tr><th>reviewers</th><th>shared items</th><th>percent agreement</th>"
             f"<th>Cohen's kappa</th></tr>{rows}</table>") if rows else "<p id='pairs'>No item has two reviewers yet.</p>"
    dis = "".join(f"<tr><td>{d['item_id']}</td><td>{escape(d['text'])}</td><td>{escape(str(d['guess']))}</td>"
                  f"<td>{escape(json.dumps(d['labels']))}</td></tr>" for d in report["disagreements"])
    dis_html = (f"<table id='disagreements'><tr><th>item</th><th>text</th><th>model's guess</th><th>labels</th></tr>"
                f"{dis}</table>") if dis else "<p id='disagreements'>No disagreements.</p>"
    return f"<div class='card'><h2>Agreement</h2>{pairs}</div><div class='card'><h2>Disagreeing items</h2>{dis_html}</div>"



def _kappa(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"

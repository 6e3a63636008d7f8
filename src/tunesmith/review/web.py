"""The review page: one item at a time, the model's guess and confidence, label buttons and keyboard shortcuts.

    app = create_review_app("sqlite:///.tunesmith/predictions.db", "sentiment", labels=["neg", "pos"])
    app = create_review_app(url, "sentiment", reviewer_tokens={"ana": TOKEN_A, "ben": TOKEN_B})
    mount_review(serving_app, url, "sentiment")   # the same page under the serving app at /review

Plain server-rendered HTML with a few lines of vanilla JS for the shortcuts (Enter/a accept, 1-9 pick a label,
s skip, u undo); every form also works without JS. Each POST commits before the redirect, so what a reviewer saw
saved is on disk.

Who is reviewing comes from the sign-in, never from a form field:
  - per-reviewer tokens (`reviewer_tokens`, `name=token,...` in $TUNESMITH_REVIEW_TOKENS for the CLI): the token
    (`Authorization: Bearer`, or the cookie /login sets) is the reviewer; undo reaches only their own labels;
  - one shared token (the serving token's env var): every holder is trusted alike; the reviewer is `reviewer`
    when fixed, else the name each one enters once (a cookie signed with the token; `x-reviewer` for bearer
    API calls);
  - no token (local use): the reviewer is `reviewer` (`tunesmith review --reviewer`) or the OS user name.
A form or header naming a different reviewer is refused (403).

Every POST carries a CSRF token (an HMAC, under a per-process secret, of a per-browser session id cookie and the
reviewer) and must come from the page's own origin (Origin, else Referer, equal to the Host); a request that
authenticates with an `Authorization` header needs no CSRF token (a browser never adds that header by itself).
`allowed_hosts` refuses other Host headers (a DNS-rebinding page would otherwise be "same origin"). Every
response carries X-Frame-Options: DENY, X-Content-Type-Options: nosniff and a nonce-based CSP (no
'unsafe-inline'). Labels must be the model's classes (`labels`, else those seen in the queue): others get a 422.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import json
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from tunesmith.review import store, widgets
from tunesmith.review.agreement import agreement
from tunesmith.review.store import Action
from tunesmith.serving.middleware import TOKEN_COOKIE  # the serving app accepts the same cookie
from tunesmith.serving.pages import PageGuard, root
from tunesmith.serving.pages import bad as _bad
from tunesmith.serving.pages import match_token as _match
from tunesmith.serving.pages import read_form as _form

REVIEWER_COOKIE = "tunesmith_reviewer"  # shared-token mode: the reviewer's name, signed with the token
OPEN_PATHS = ("/login", "/healthz")
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1"]
MIN_TOKEN_CHARS = 16

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
td,th{border-bottom:1px solid #ddd;padding:6px;text-align:left} .inline{display:inline}
mark{background:#ffe58a;border-radius:3px;padding:0 2px} mark sub{color:#7a5b00;font-size:.7em;margin-left:2px}
.choice{display:inline-block;margin:4px 12px 4px 0} .turn{margin:4px 0;white-space:pre-wrap}
textarea{width:100%;font-size:1em;font-family:inherit} #candidates button{text-align:left}
#query{font-weight:600;white-space:pre-wrap}
"""

KEYS_JS = """
let sent = false;
document.addEventListener('keydown', (e) => {
  const tag = (e.target.tagName || '').toLowerCase();
  const save = document.getElementById('save');
  if ((e.ctrlKey || e.metaKey) && e.key === 'Enter' && save && !sent) {  // a form being typed in
    e.preventDefault(); sent = true; save.click(); return;
  }
  if (tag === 'input' || tag === 'textarea' || e.ctrlKey || e.metaKey || e.altKey || sent) return;
  let id = null;
  if (e.key === 'Enter' || e.key === 'a') id = 'accept';
  else if (e.key === 's') id = 'skip';
  else if (e.key === 'u') id = 'undo';
  else if (e.key === 'r') id = 'reject';
  else if (/^[0-9]$/.test(e.key)) id = 'label-' + e.key;
  const button = id && document.getElementById(id);
  if (button) { e.preventDefault(); sent = true; button.click(); }
});
"""


def _page(title: str, body: str, root: str, reviewer: str | None, nonce: str, css: str = "") -> HTMLResponse:
    who = f"reviewer: <b id='reviewer-name'>{escape(reviewer)}</b>" if reviewer else "no reviewer set"
    html = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style nonce='{nonce}'>{CSS}{css}</style></head><body><header><b>tunesmith review</b>"
            f"<span>{escape(title)}</span><span>{who}</span><a href='{root}/'>queue</a>"
            f"<a href='{root}/agreement'>agreement</a></header>"
            f"<main>{body}</main><script nonce='{nonce}'>{KEYS_JS}</script></body></html>")
    return HTMLResponse(html)


@dataclass(frozen=True)
class _Who:
    """The result of sign-in: authorized?, the reviewer (None: not named yet), and how the request authenticated."""

    authorized: bool
    reviewer: str | None = None
    by_header: bool = False  # Authorization: Bearer (no CSRF token needed: a browser never sends it by itself)
    token: str | None = None  # the matching token (shared mode signs the name cookie with it)
    shared: bool = False  # the one shared token: the reviewer names themself


def parse_reviewer_tokens(text: str) -> dict[str, str]:
    """`name=token,name=token` (commas or newlines) -> {name: token}; ValueError naming what is wrong."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        name, sep, tok = (x.strip() for x in part.partition("="))
        if not sep or not name or not tok:
            raise ValueError(f"{part.split('=')[0]!r}: give name=token pairs separated by commas")
        if len(name) > 100:
            raise ValueError(f"{name[:20]!r}...: a reviewer name is at most 100 characters")
        if len(tok) < MIN_TOKEN_CHARS:
            raise ValueError(f"{name}: the token is shorter than {MIN_TOKEN_CHARS} characters "
                             "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(24))')")
        if name in out:
            raise ValueError(f"{name}: named twice")
        if tok in out.values():
            raise ValueError(f"{name}: shares a token with another reviewer (each needs their own)")
        out[name] = tok
    if not out:
        raise ValueError("no name=token pair given")
    return out


def default_reviewer() -> str:
    """The reviewer of a page without tokens and without --reviewer: the OS user running it."""
    try:
        return getpass.getuser() or "local"
    except (KeyError, OSError):  # no user name in the environment / password database
        return "local"


def create_review_app(url: str, model: str, *, labels: list[str] | None = None, token: str | None = None,
                      reviewer_tokens: dict[str, str] | None = None, reviewer: str | None = None,
                      allowed_hosts: list[str] | None = None) -> FastAPI:
    """A FastAPI app serving `model`'s review queue from the database at `url`.

    `token`: one shared token (every holder names themself, unless `reviewer` fixes the name);
    `reviewer_tokens`: {reviewer: token}, each token signs in as its reviewer; neither: no sign-in (local use),
    the reviewer is `reviewer` or the OS user. `allowed_hosts`: Host names to answer (None or "*": any).
    """
    app = FastAPI(title=f"tunesmith review: {model}", docs_url=None, redoc_url=None, openapi_url=None)
    store.db_engine(url)  # create the tables before the first request
    fixed_labels = list(labels) if labels else None
    seen_labels: dict[int, list[str]] = {}  # queue size -> its labels: rescanned only when items were added
    tokens: dict[str, str | None] = {tok: name for name, tok in (reviewer_tokens or {}).items()}
    if token and token not in tokens:
        tokens[token] = None  # the shared token: no name of its own
    fixed = (reviewer or "").strip()[:100] or (None if tokens else default_reviewer())

    def labels_for(total: int) -> list[str]:
        if total not in seen_labels:
            seen_labels.clear()
            seen_labels[total] = _labels(url, model, fixed_labels)
        return seen_labels[total]

    def who(request: Request) -> _Who:
        if not tokens:
            return _Who(True, fixed)
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        by_header = scheme.lower() == "bearer" and _match(tokens, value.strip())
        match = by_header or _match(tokens, request.cookies.get(TOKEN_COOKIE, ""))
        if not match:
            return _Who(False)
        name = tokens[match]
        if name is None:  # shared token: a fixed name, the bearer caller's x-reviewer, or the signed cookie
            name = fixed or (request.headers.get("x-reviewer") if by_header
                             else _unsign_name(request.cookies.get(REVIEWER_COOKIE, ""), match))
        return _Who(True, (name or "").strip()[:100] or None, bool(by_header), match, tokens[match] is None)

    def csrf_input(request: Request, reviewer: str | None) -> str:
        return guard.csrf_input(request, reviewer)

    def refused(request: Request, form: dict, w: _Who, reviewer: str | None) -> JSONResponse | None:
        """403 for a POST without this session's CSRF token, or naming someone other than who signed in."""
        if (bad := guard.csrf_refused(request, form, reviewer, by_header=w.by_header)) is not None:
            return bad
        header_names = w.shared and w.by_header and not fixed  # then x-reviewer *is* the reviewer
        for claimed in (form.get("reviewer"), None if header_names else request.headers.get("x-reviewer")):
            if claimed is not None and reviewer is not None and claimed.strip() != reviewer:
                return _bad(f"reviewer: you are signed in as {reviewer!r}; a form or header cannot act as "
                            f"{claimed.strip()!r}", 403)
        return None

    guard = PageGuard(authorized=lambda request: who(request).authorized, allowed_hosts=allowed_hosts,
                      open_paths=OPEN_PATHS)
    guard.install(app)

    def page(request: Request, body: str, reviewer: str | None, css: str = "") -> HTMLResponse:
        return _page(model, body, root(request), reviewer, request.state.nonce, css)

    guard.add_login(app, tokens=tokens, render=lambda request, body: page(request, body, None))

    @app.post("/reviewer")
    async def set_reviewer(request: Request):
        """Shared-token mode: name yourself once; the name is kept in a cookie signed with the token."""
        form, w = await _form(request), who(request)
        if not w.shared or fixed:
            return _bad("reviewer: your reviewer name comes from your sign-in here and cannot be changed", 403)
        if (bad := refused(request, {"csrf": form.get("csrf", "")}, w, w.reviewer)) is not None:
            return bad
        name = form.get("reviewer", "").strip()[:100]
        if not name:
            return _bad("reviewer: give your name")
        response = RedirectResponse(f"{root(request)}/", status_code=303)
        response.set_cookie(REVIEWER_COOKIE, _sign_name(name, w.token), httponly=True, samesite="strict", path="/")
        return response

    @app.get("/", response_class=HTMLResponse)
    def queue(request: Request):
        reviewer = who(request).reviewer
        r = root(request)
        if not reviewer:  # shared token, no name yet
            name_form = (f"<form method='post' action='{r}/reviewer' class='card' id='reviewer-form'>"
                         f"{csrf_input(request, None)}<label>Your name <input name='reviewer' id='reviewer' "
                         "required autofocus></label> <button>Start reviewing</button></form>")
            return page(request, name_form, None)
        item = store.next_item(url, model, reviewer=reviewer)
        done = store.progress(url, model, reviewer=reviewer)
        flash = escape(request.query_params.get("saved", ""))
        header = (f"<p class='meta'><span id='progress'>{done['mine']} / {done['total']} reviewed by you</span> · "
                  f"{done['labeled']} labeled by anyone · <span id='flash'>{flash}</span></p>")
        token_input = csrf_input(request, reviewer)
        undo = (f"<form method='post' action='{r}/undo' class='inline'>{token_input}"
                "<button id='undo'>Undo <kbd>u</kbd></button></form>")
        if item is None:
            body = f"{header}<div class='card' id='done'><h2>Queue empty</h2><p>Nothing left for you to review.</p>{undo}</div>"
            return page(request, body, reviewer)
        if store.family_of(item) is not None:  # another family's item: its widget's form
            return page(request, header + widgets.card(item, token_input, r) + undo, reviewer)
        body = header + _item_card(item, labels_for(done["total"]), token_input, r) + undo
        return page(request, body, reviewer, _bar_css(item))

    @app.post("/label")
    async def label(request: Request):
        form = await _form(request)
        # the database work runs off the event loop: mounted in the serving app, it must not stall predictions
        return await run_in_threadpool(label_sync, request, form)

    def label_sync(request: Request, form: dict):
        w = who(request)
        reviewer = w.reviewer
        if (bad := refused(request, form, w, reviewer)) is not None:
            return bad
        if not reviewer:
            return _bad("reviewer: name yourself on the page first (or send x-reviewer with the shared token)")
        try:
            item_id = int(form.get("item_id", ""))
        except ValueError:
            return _bad("item_id: missing or not a number")
        item = store.get_item(url, item_id)
        if item is None or item["model"] != model:
            return _bad(f"item_id: no review item {item_id} for {model}", 404)
        if store.family_of(item) is not None:
            return family_label(request, item, form, reviewer)
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
        valid = labels_for(store.progress(url, model)["total"])
        if value is not None and value not in valid:
            what = "the model's guess" if choice == "accept" else "label"
            listed = ", ".join(valid) or "none known: set review.labels"
            return _bad(f"choice: {what} {value!r} is not one of the model's labels ({listed})", 422)
        _record_once(url, model, item_id, value, reviewer, action)
        saved = f"saved {action.value}" + (f": {value}" if value else "") + f" (item {item_id})"
        return RedirectResponse(f"{root(request)}/?saved={quote(saved)}", status_code=303)

    def family_label(request: Request, item: dict, form: dict, reviewer: str):
        """Another family's item: the widget's value, checked by the family's feedback check, stored as JSON."""
        from tunesmith.families import get

        fam, ctx = get(store.family_of(item)), item["context"]
        if form.get("choice") == "skip":
            action, value, summary = Action.SKIP, None, None
        else:
            try:
                _, raw = widgets.form_value(item, form)
                value = fam.feedback.check(raw, ctx.get("labels"), ctx.get("input"))
            except ValueError as exc:  # FormError too
                return _bad(f"{exc}" if isinstance(exc, widgets.FormError) else f"value: {exc}", 422)
            same = ctx.get("guess") is not None and store.canonical(value) == store.canonical(ctx["guess"])
            action, summary = (Action.ACCEPT if same else Action.RELABEL), str(fam.feedback.summary(value))[:200]
        _record_once(url, model, item["id"], summary, reviewer, action, value)
        saved = f"saved {action.value}" + (f": {summary}" if summary else "") + f" (item {item['id']})"
        return RedirectResponse(f"{root(request)}/?saved={quote(saved[:300])}", status_code=303)

    @app.post("/undo")
    async def undo(request: Request):
        form, w = await _form(request), who(request)
        if (bad := refused(request, form, w, w.reviewer)) is not None:
            return bad
        if not w.reviewer:
            return _bad("reviewer: name yourself on the page first")
        item_id = None
        if form.get("item_id"):
            try:
                item_id = int(form["item_id"])
            except ValueError:
                return _bad("item_id: not a number")
        undone = await run_in_threadpool(store.undo_last, url, model, reviewer=w.reviewer, item_id=item_id)
        if undone is None and item_id is not None and await run_in_threadpool(
                lambda: any(r["item_id"] == item_id for r in store.label_rows(url, model))):
            return _bad(f"item_id: item {item_id}'s labels are other reviewers'; you can undo only your own", 403)
        saved = f"undid your label on item {undone}" if undone is not None else "nothing to undo"
        return RedirectResponse(f"{root(request)}/?saved={quote(saved)}", status_code=303)

    @app.get("/agreement", response_class=HTMLResponse)
    def agreement_page(request: Request):
        return page(request, _agreement_html(agreement(url, model)), who(request).reviewer)

    @app.get("/api/progress")
    def api_progress(request: Request) -> dict:
        return store.progress(url, model, reviewer=who(request).reviewer)

    @app.get("/api/agreement")
    def api_agreement() -> dict:
        return agreement(url, model)

    @app.get("/api/reviewed")
    def api_reviewed() -> list[dict]:
        return store.reviewed_labels(url, model)

    return app


def mount_review(app: FastAPI, url: str, model: str, *, labels: list[str] | None = None, token: str | None = None,
                 path: str = "/review", **options) -> None:
    """Serve the review page under another app (the serving app) at `path` (options: see create_review_app)."""
    app.mount(path, create_review_app(url, model, labels=labels, token=token, **options))


def _sign_name(name: str, token: str) -> str:
    encoded = base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")
    return f"{encoded}.{hmac.new(token.encode(), f'reviewer|{name}'.encode(), hashlib.sha256).hexdigest()}"


def _unsign_name(value: str, token: str) -> str | None:
    encoded, _, sig = value.partition(".")
    try:
        name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except ValueError:
        return None
    return name if sig and hmac.compare_digest(_sign_name(name, token).partition(".")[2], sig) else None


def _record_once(url, model, item_id, label, reviewer, action, value=None) -> None:
    """A double-submitted form (two key presses before the page changed) records one label, not two. `label`: a
    classifier's label, or the summary of another family's `value`."""
    mine = store.latest_per_reviewer([r for r in store.label_rows(url, model) if r["item_id"] == item_id])
    last = mine.get(item_id, {}).get(reviewer)
    if last is not None and last["label"] == label and last["action"] == action.value and (
            value is None or store.canonical(last["value"]) == store.canonical(value)):
        return
    store.add_label(url, item_id, label=label, reviewer=reviewer, action=action, value=value)


def _labels(url: str, model: str, fixed: list[str] | None) -> list[str]:
    """The label buttons, in a fixed order so a digit key means the same label on every item."""
    if fixed:
        return fixed
    seen: set[str] = set()
    for it in store.list_items(url, model):
        seen |= {v for v in (it["guess"], it["context"].get("given"), it["context"].get("shadow_label")) if v}
        seen |= set((it["scores"] or {}).keys())
    return sorted(seen)


def _bar_css(item: dict) -> str:
    """The confidence bar's width: a rule in the page's nonce'd <style> (the CSP allows no style attribute)."""
    conf = item["confidence"]
    return f".bar span{{width:{conf * 100:.1f}%}}" if conf is not None else ""


def _item_card(item: dict, labels: list[str], token_input: str, root: str) -> str:
    conf = item["confidence"]
    conf_html = (f"<span id='confidence'>{conf:.1%}</span><div class='bar'><span></span></div>"
                 if conf is not None else "<span id='confidence'>n/a</span>")
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
            f"value='{item['id']}'>{token_input}{accept}"
            f"<div id='labels'>{buttons}</div><button type='submit' name='choice' value='skip' id='skip'>Skip "
            "<kbd>s</kbd></button></form></div>")


def _agreement_html(report: dict) -> str:
    rows = "".join(
        f"<tr><td>{escape(' & '.join(p['reviewers']))}</td><td>{p['items']}</td><td>{p['percent_agreement']:.1%}</td>"
        f"<td>{escape(p.get('measure', ''))}</td>"
        f"<td>{_kappa(p['kappa'] if p.get('mean_agreement') is None else p['mean_agreement'])}</td></tr>"
        for p in report["pairs"])
    pairs = (f"<table id='pairs'><tr><th>reviewers</th><th>shared items</th><th>percent agreement</th>"
             f"<th>measure</th><th>value</th></tr>{rows}</table>") if rows else \
        "<p id='pairs'>No item has two reviewers yet.</p>"
    dis = "".join(f"<tr><td>{d['item_id']}</td><td>{escape(d['text'])}</td><td>{escape(str(d['guess']))}</td>"
                  f"<td>{escape(json.dumps(d['labels']))}</td></tr>" for d in report["disagreements"])
    dis_html = (f"<table id='disagreements'><tr><th>item</th><th>text</th><th>model's guess</th><th>labels</th></tr>"
                f"{dis}</table>") if dis else "<p id='disagreements'>No disagreements.</p>"
    return f"<div class='card'><h2>Agreement</h2>{pairs}</div><div class='card'><h2>Disagreeing items</h2>{dis_html}</div>"



def _kappa(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"

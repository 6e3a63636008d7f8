"""`tunesmith ui`: the built-in console for one config's models, no Grafana needed.

    app = create_console(cfg, token="...", servers=["http://127.0.0.1:8000"])

Pages (server-rendered HTML, no script; every logged or registered text escaped):
  /                          every registered model; for the config's model: each server's live rollout (champion,
                             challenger, canary share, its recent loads and rollbacks with reasons), the objectives
                             against the last monitor report (live quality, burn rate, drift, human-review rate and
                             backlog) and the cost figures of the versions serving
  /models/NAME               every version: gate decision, lineage, cost, a rollback's reason; links to its
                             report, model card and the model's runbook; promote, roll back, retire
  /models/NAME/runbook       the model's runbook (tunesmith.ops.runbook)
  /models/NAME/V/report      the version's evaluation report (its MLflow run's report.html, sandboxed)
  /models/NAME/V/card        the version's model card
  /api/state                 what / shows, as JSON

Promote, roll back and retire are forms that ask for confirmation first; they change the registry aliases, which
every server picks up within serving.poll_interval_s. The console takes the serving token (serving.auth_token_env:
a bearer header, or the cookie /login sets, which the serving app accepts too) and the review page's browser
safety (CSRF token per form, same-origin POSTs, Host check, nonce CSP: tunesmith.serving.pages).
"""

from __future__ import annotations

import json
import logging
from html import escape
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tunesmith.config import Config
from tunesmith.serving.middleware import TOKEN_COOKIE
from tunesmith.serving.pages import PageGuard, bad, match_token, read_form, root

_log = logging.getLogger("tunesmith.console")

CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#243b55;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header a{color:#cfe3ff} main{max-width:1100px;margin:20px auto;padding:0 16px}
.card{background:#fff;border-radius:8px;padding:16px 20px;box-shadow:0 1px 4px #0002;margin-bottom:16px}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #e3e6ea;padding:6px 8px;text-align:left;
vertical-align:top;font-size:14px} th{background:#f0f2f5}
.ok{color:#17663a;font-weight:600} .bad{color:#b3261e;font-weight:600} .na{color:#6b7280}
button{font-size:14px;padding:6px 14px;border-radius:6px;border:1px solid #243b55;background:#243b55;color:#fff;
cursor:pointer} button.secondary{background:#fff;color:#243b55} a:focus-visible,button:focus-visible,
select:focus-visible,input:focus-visible{outline:3px solid #f5a524;outline-offset:2px}
.skip{position:absolute;left:-999px} .skip:focus{left:10px;top:10px;background:#fff;color:#000;padding:6px}
form.inline{display:inline-block;margin-right:12px} .flash{background:#e7f6ec;border-left:4px solid #17663a}
pre{white-space:pre-wrap;font-size:13px} code{background:#f0f2f5;padding:1px 4px;border-radius:3px}
"""


def _status(value: str | None) -> str:
    cls = {"ok": "ok", "passed": "ok", "breach": "bad", "failed": "bad", "unreachable": "bad"}.get(value or "", "na")
    return f"<span class='{cls}'>{escape(value or 'n/a')}</span>"


def _num(value, digits: int = 4) -> str:
    return "n/a" if value is None else escape(f"{value:.{digits}g}" if isinstance(value, float) else str(value))


def _table(head: list[str], rows: list[list[str]], caption: str = "") -> str:
    """Cells are HTML already (escaped by whoever built them)."""
    cap = f"<caption class='na'>{escape(caption)}</caption>" if caption else ""
    return (f"<table>{cap}<thead><tr>{''.join(f'<th scope=col>{escape(h)}</th>' for h in head)}</tr></thead><tbody>"
            + "".join(f"<tr>{''.join(f'<td>{c}</td>' for c in row)}</tr>" for row in rows) + "</tbody></table>")


class Console:
    """What the pages read: the registry, the servers, the monitor's last report."""

    def __init__(self, cfg: Config, *, token: str, servers: list[str] | None = None, store=None):
        from tunesmith.registry import open_store

        self.cfg = cfg
        self.token = token
        self.store = store or open_store(cfg.registry)
        host = "127.0.0.1" if cfg.serving.host in ("0.0.0.0", "::") else cfg.serving.host
        self.servers = [s.rstrip("/") for s in (servers or [f"http://{host}:{cfg.serving.port}"])]

    def models(self) -> list[dict]:
        from tunesmith.registry import list_models

        return list_models(store=self.store)

    def model(self, name: str) -> dict:
        from tunesmith.registry import show_model

        return show_model(name, store=self.store)

    def server(self, url: str) -> dict:
        """One server's live rollout (/v1/rollout with the token), or why it could not be read."""
        import httpx

        try:
            answer = httpx.get(f"{url}/v1/rollout", headers={"Authorization": f"Bearer {self.token}"}, timeout=3)
        except httpx.HTTPError as exc:
            return {"url": url, "status": "unreachable", "error": type(exc).__name__}
        if answer.status_code != 200:
            return {"url": url, "status": "unreachable", "error": f"HTTP {answer.status_code}"}
        return {"url": url, "status": "ok", **answer.json()}

    def monitor_report(self, name: str) -> dict | None:
        path = Path(self.cfg.monitoring.report_dir) / name / "latest.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def state(self) -> dict:
        name = self.cfg.name
        models = self.models()
        current = next((m for m in models if m["name"] == name), None)
        from tunesmith.registry import list_versions

        versions = list_versions(name, store=self.store) if current else []  # tags only: no run per version
        serving = [v for v in versions if set(v.aliases) & {"champion", "challenger"}]
        return {"model": name, "models": models, "servers": [self.server(url) for url in self.servers],
                "slo": self.cfg.monitoring.slo.model_dump(), "monitor": self.monitor_report(name),
                "cost": {str(v.version): _json_tag(v.tags.get("cost")) for v in serving}}


def _json_tag(value: str | None) -> dict | None:
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


def create_console(cfg: Config, *, token: str, servers: list[str] | None = None, store=None,
                   allowed_hosts: list[str] | None = None) -> FastAPI:
    """The console app for `cfg`'s model (and a view of every other registered model)."""
    if not token or len(token) < 16:
        raise ValueError(f"the console needs the serving token (${cfg.serving.auth_token_env}, 16+ characters): it "
                         "promotes and rolls back models")
    console = Console(cfg, token=token, servers=servers, store=store)
    app = FastAPI(title="tunesmith console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console

    def authorized(request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        given = value.strip() if scheme.lower() == "bearer" else request.cookies.get(TOKEN_COOKIE, "")
        return bool(match_token([token], given))

    guard = PageGuard(authorized=authorized, allowed_hosts=allowed_hosts)
    guard.install(app)

    def page(request: Request, title: str, body: str, status: int = 200) -> HTMLResponse:
        r, nonce = root(request), request.state.nonce
        return HTMLResponse(
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)} - tunesmith</title>"
            f"<style nonce='{nonce}'>{CSS}</style></head><body><a class='skip' href='#main'>Skip to content</a>"
            f"<header><b>tunesmith console</b><nav><a href='{r}/'>overview</a> · "
            f"<a href='{r}/models/{quote(cfg.name)}'>{escape(cfg.name)}</a> · "
            f"<a href='{r}/models/{quote(cfg.name)}/runbook'>runbook</a></nav></header>"
            f"<main id='main'><h1>{escape(title)}</h1>{body}</main></body></html>", status_code=status)

    guard.add_login(app, tokens=[token], render=lambda request, body: page(request, "Sign in", body),
                    label=f"Serving token (${escape(cfg.serving.auth_token_env)})")

    @app.get("/api/state")
    async def api_state() -> dict:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(console.state)

    @app.get("/", response_class=HTMLResponse)
    async def overview(request: Request):
        from starlette.concurrency import run_in_threadpool

        state = await run_in_threadpool(console.state)
        return page(request, f"{cfg.name}: overview", _overview_html(cfg, state, root(request)))

    @app.get("/models/{name}", response_class=HTMLResponse)
    async def model_page(request: Request, name: str, done: str = ""):
        from starlette.concurrency import run_in_threadpool

        from tunesmith.registry import RegistryError

        try:
            info = await run_in_threadpool(console.model, name)
        except RegistryError as exc:
            return page(request, "Not found", f"<p>{escape(str(exc))}</p>", 404)
        flash = f"<div class='card flash' role='status'>{escape(done)}</div>" if done else ""
        trail = await run_in_threadpool(_audit, console, name)
        return page(request, f"{name}: versions", flash + _model_html(info, root(request),
                                                                       lambda who: guard.csrf_input(request, who))
                    + trail)

    @app.post("/models/{name}/{action}")
    async def act(request: Request, name: str, action: str):
        from starlette.concurrency import run_in_threadpool

        from tunesmith.registry import RegistryError

        form = await read_form(request)
        if (refused := guard.csrf_refused(request, form, name, by_header="authorization" in request.headers)):
            return refused
        if action not in ACTIONS:
            return bad(f"action: one of {', '.join(ACTIONS)}", 404)
        version = form.get("version", "").strip()
        if version and not version.isdigit():
            return bad("version: a version number", 422)
        if form.get("confirm") != "yes":  # the confirmation step: nothing changes before it
            what = ACTIONS[action][0].format(name=name, version=version or "the challenger")
            body = (f"<div class='card'><p id='confirm-question'>{escape(what)}?</p>"
                    f"<form method='post' class='inline' action='{root(request)}/models/{quote(name)}/{action}'>"
                    f"{guard.csrf_input(request, name)}<input type='hidden' name='version' value='{escape(version)}'>"
                    + f"<label>Reason (kept in the audit trail) <input name='reason' id='reason' required value="
                      f"'{escape(form.get('reason', ''))}'></label> "
                    + "<input type='hidden' name='confirm' value='yes'><button id='confirm'>Confirm</button></form>"
                    f"<a id='cancel' href='{root(request)}/models/{quote(name)}' autofocus>Cancel</a></div>")
            return page(request, f"{name}: confirm", body)
        try:
            message = await run_in_threadpool(_do, console, action, name, version or None, form.get("reason", ""))
        except (RegistryError, ValueError) as exc:
            return page(request, f"{name}: not done", f"<div class='card'><p class='bad'>{escape(str(exc))}</p>"
                        f"<a href='{root(request)}/models/{quote(name)}'>back</a></div>", 409)
        _log.warning("console: %s (by the console's token holder)", message)
        return RedirectResponse(f"{root(request)}/models/{quote(name)}?done={quote(message)}", status_code=303)

    @app.get("/models/{name}/runbook", response_class=HTMLResponse)
    async def runbook_page(request: Request, name: str):
        text = _runbook_text(console, name)
        if text is None:
            return page(request, "No runbook", f"<p>{escape(name)} has no runbook here (its champion carries none and "
                        "it is not this config's model).</p>", 404)
        return page(request, f"{name}: runbook", f"<div class='card'>{render_markdown(text)}</div>")

    @app.get("/models/{name}/{version}/report")
    async def report(name: str, version: int):
        from starlette.concurrency import run_in_threadpool

        html = await run_in_threadpool(_run_artifact, console, name, version, "report.html")
        if html is None:
            return bad(f"{name} version {version} has no evaluation report", 404)
        # the report is ours, every text in it escaped; sandboxed anyway: no script, no form, no navigation
        return Response(html, media_type="text/html", headers={
            "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"})

    @app.get("/models/{name}/{version}/card", response_class=HTMLResponse)
    async def card(request: Request, name: str, version: int):
        from starlette.concurrency import run_in_threadpool

        readme, found = await run_in_threadpool(_card, console, name, version)
        if readme is None and found is None:
            return page(request, "No model card", f"<p>{escape(name)} version {version} has no model card.</p>", 404)
        body = ""
        if readme is not None:  # README.md: YAML metadata between --- lines, then markdown
            _, sep, rest = readme.partition("---\n")
            meta, sep2, text = rest.partition("\n---\n") if sep else ("", "", readme)
            body += (f"<details><summary>metadata</summary><pre>{escape(meta)}</pre></details>" if sep2 else "") + \
                render_markdown(text if sep2 else readme)
        if found is not None:
            rows = [[f"<code>{escape(k)}</code>", f"<pre>{escape(json.dumps(v, indent=1, default=str))}</pre>"]
                    for k, v in found.items()]
            body += f"<h2>tunesmith.json</h2>{_table(['field', 'value'], rows)}"
        return page(request, f"{name} v{version}: model card", f"<div class='card'>{body}</div>")

    return app


# action -> (confirmation question, what it does)
ACTIONS = {
    "promote": ("Promote {name} version {version} to champion",
                "every server answers with it within serving.poll_interval_s"),
    "rollback": ("Roll {name}'s champion back to the version before the last promote", ""),
    "retire": ("Retire {name}'s challenger ({version}): take it out of traffic and never load it again", ""),
}


def _do(console: Console, action: str, name: str, version: str | None, reason: str) -> str:
    from tunesmith import registry

    if not reason.strip():
        raise ValueError(f"{action}: give a reason (kept in the model's audit trail)")
    who = "tunesmith ui (serving token)"
    if action == "promote":
        v = registry.promote(name, version, store=console.store, who=who, reason=reason)
        return f"{name}: version {v.version} is champion; servers load it within their poll interval"
    if action == "rollback":
        v = registry.rollback(name, store=console.store, who=who, reason=reason)
        return f"{name}: champion rolled back to version {v.version}"
    from tunesmith.serving.state import retire_current_challenger

    challenger = retire_current_challenger(console.store, name, reason.strip(), who=who)
    return f"{name}: challenger version {challenger} retired"


def _audit(console: Console, name: str) -> str:
    """The model's audit trail, newest first (registry.audit)."""
    from tunesmith.registry import audit_log

    rows = [[escape(str(e.get(k) if e.get(k) is not None else "-")) for k in
             ("at", "who", "action", "version", "previous", "reason")] for e in reversed(audit_log(name, store=console.store))]
    body = _table(["when (UTC)", "who", "action", "version", "from", "why"], rows) if rows else \
        "<p class='na'>no audited changes yet</p>"
    return f"<section class='card' aria-labelledby='h-audit'><h2 id='h-audit'>Audit trail</h2>{body}</section>"


def _runbook_text(console: Console, name: str) -> str | None:
    from tunesmith.ops.runbook import runbook

    if name == console.cfg.name:
        return runbook(console.cfg)
    from tunesmith.registry import model_dir_for

    try:
        found = model_dir_for(name, "champion", store=console.store)
    except Exception:  # noqa: BLE001  (a model without a champion, an unreachable artifact store: no page)
        return None
    path = Path(found) / "RUNBOOK.md" if found is not None else None
    return path.read_text() if path is not None and path.is_file() else None


def _run_artifact(console: Console, name: str, version: int, artifact: str) -> str | None:
    import mlflow

    try:
        info = console.store.client.get_model_version(name, str(version))
        local = mlflow.artifacts.download_artifacts(run_id=info.run_id, artifact_path=artifact,
                                                    tracking_uri=console.store.tracking_uri)
        return Path(local).read_text()
    except Exception:  # noqa: BLE001  (no such version, run or artifact: the page says there is none)
        return None


def _card(console: Console, name: str, version: int) -> tuple[str | None, dict | None]:
    """(README.md, the tunesmith.json card) of a version's model dir; Nones where there is none."""
    from tunesmith.model_card import read_model_card
    from tunesmith.registry import model_dir_for

    try:
        found = model_dir_for(name, version, store=console.store)
    except Exception:  # noqa: BLE001
        return None, None
    if found is None:
        return None, None
    readme = Path(found) / "README.md"
    return (readme.read_text() if readme.is_file() else None), read_model_card(found)


def render_markdown(text: str) -> str:
    """Markdown without raw HTML (escaped), except the runbook's own `<a id="group"></a>` anchors."""
    import re

    from markdown_it import MarkdownIt

    anchors: list[str] = []

    def keep(match: re.Match) -> str:
        anchors.append(match.group(1))
        return f"ANCHOR{len(anchors) - 1}ANCHOR"

    text = re.sub(r'^<a id="([a-z0-9-]+)"></a>$', keep, text, flags=re.M)
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return re.sub(r"<p>ANCHOR(\d+)ANCHOR</p>", lambda m: f"<span id='{anchors[int(m.group(1))]}'></span>", html)


def _overview_html(cfg: Config, state: dict, r: str) -> str:
    models = _table(["model", "champion", "challenger", "latest", "updated"], [
        [f"<a href='{r}/models/{quote(m['name'])}'>{escape(m['name'])}</a>", _num(m["champion"]),
         _num(m["challenger"]), _num(m["latest_version"]), escape(m["updated"] or "")] for m in state["models"]])
    servers = []
    for s in state["servers"]:
        if s["status"] != "ok":
            servers.append([escape(s["url"]), _status("unreachable"), escape(s.get("error", "")), "", ""])
            continue
        roles = ", ".join(f"{escape(k)} v{_num(v)}" for k, v in s["serving"].items())
        events = "<br>".join(escape(f"{e['time'][:19]} {e['event']} v{e.get('version', '?')}"
                                    + (f": {e['reason']}" if e.get("reason") else ""))
                             for e in s["events"][-8:] if e["event"] in ("rollback", "loaded", "unloaded"))
        servers.append([escape(s["url"]), _status("ok"), roles, f"{_num(s['canary_percent'])}%", events or "none"])
    live = _live_html(cfg, state["monitor"])
    cost = _table(["version", "CPU s (training run)", "train", "per 1k answers", "currency"], [
        [escape(v), _num(c.get("cpu_seconds")), _num(c.get("train")), _num(c.get("per_1k")), escape(c.get("currency", ""))]
        for v, c in state["cost"].items() if c]) if any(state["cost"].values()) else \
        "<p class='na'>no cost figures (set cost: prices in the config)</p>"
    return (f"<section class='card' aria-labelledby='h-models'><h2 id='h-models'>Registered models</h2>{models}</section>"
            f"<section class='card' aria-labelledby='h-servers'><h2 id='h-servers'>Servers of {escape(cfg.name)}</h2>"
            + _table(["server", "status", "serving", "canary", "recent loads and rollbacks"], servers)
            + f"</section><section class='card' aria-labelledby='h-slo'><h2 id='h-slo'>Objectives</h2>{live}</section>"
            f"<section class='card' aria-labelledby='h-cost'><h2 id='h-cost'>Cost</h2>{cost}</section>")


def _live_html(cfg: Config, report: dict | None) -> str:
    slo = cfg.monitoring.slo
    objectives = [f"availability {slo.availability:g}", *(f"p{p} within {t:g}s" for p, t in
                                                          ((95, slo.latency_p95_s), (99, slo.latency_p99_s)) if t)]
    objectives += ([f"{k} {v:g}" for k, v in slo.targets.items()] or
                   [f"live accuracy {slo.accuracy:g}"] + ([f"macro-F1 {slo.macro_f1:g}"] if slo.macro_f1 else []))
    if slo.human_review_rate is not None:
        objectives.append(f"human review at most {slo.human_review_rate:.0%}")
    head = f"<p>{escape('; '.join(objectives))} (burn-rate alerts: <code>tunesmith ops rules</code>)</p>"
    if report is None:
        return head + "<p class='na'>no monitor report yet (<code>tunesmith monitor</code>)</p>"
    rows = []
    for version, v in (report.get("live", {}).get("versions") or {}).items():
        figures = {k: v.get(k) for k in ("accuracy", "macro_f1", *report["live"].get("metrics", {})) if k in v}
        rows.append([f"v{escape(str(version))}", escape(", ".join(f"{k} {_num(x)}" for k, x in figures.items())),
                     _num(v.get("burn_rate")), _num(v.get("n")), _status(v.get("status"))])
    drift = report.get("drift") or {}
    flagged = [name for name, t in (drift.get("tests") or {}).items() if t.get("flagged")]
    review = report.get("review") or {}
    return (head + f"<p>last monitor run {escape(report.get('generated_at', '?'))}, window "
            f"{escape(str(report.get('window')))}: {_num(report.get('predictions'))} predictions</p>"
            + _table(["version", "live quality", "burn rate", "labels", "status"], rows)
            + f"<p>drift: {_status('breach' if drift.get('detected') else 'ok')}"
            + (f" ({escape(', '.join(flagged))})" if flagged else "")
            + f"; human review: {_num(review.get('rate'), 3)} of predictions, {_num(review.get('pending'))} waiting "
            f"{_status(review.get('status'))}</p>")


def _model_html(info: dict, r: str, csrf) -> str:
    name = info["name"]
    rows = []
    for v in info["versions"]:
        tags = v["tags"]
        cost = _json_tag(tags.get("cost")) or {}
        lineage = [f"base {tags.get('base_model', '?')}", f"data {tags.get('data_fingerprint', '?')[:12]}"]
        for key, label in (("tunesmith.parent_version", "parent v"), ("tunesmith.dataset_version", "dataset v"),
                           ("tunesmith.trigger", "trigger ")):
            if tags.get(key):
                lineage.append(f"{label}{tags[key]}")
        rolled = tags.get("tunesmith.rollback_reason")
        links = (f"<a href='{r}/models/{quote(name)}/{v['version']}/report'>report</a> · "
                 f"<a href='{r}/models/{quote(name)}/{v['version']}/card'>model card</a>")
        rows.append([f"v{v['version']}", escape(", ".join(v["aliases"]) or "-"),
                     f"{_status(tags.get('gate_decision'))}<br><small>{escape(tags.get('gate_summary', ''))}</small>",
                     escape("; ".join(lineage)), _num(cost.get("per_1k")),
                     f"<span class='bad'>{escape(rolled)}</span>" if rolled else "-", links])
    table = _table(["version", "aliases", "gates", "lineage", "cost per 1k", "rolled back", "files"], rows)
    versions = [v["version"] for v in info["versions"]]
    challenger = info.get("challenger")
    options = "".join(f"<option value='{v}'{' selected' if v == challenger else ''}>v{v}</option>" for v in versions)
    actions = (f"<form method='post' class='inline' action='{r}/models/{quote(name)}/promote'>{csrf(name)}"
               f"<label>Version <select name='version' id='promote-version'>{options}</select></label> "
               "<button id='promote'>Promote to champion</button></form>"
               f"<form method='post' class='inline' action='{r}/models/{quote(name)}/rollback'>{csrf(name)}"
               "<button id='rollback' class='secondary'>Roll back the champion</button></form>"
               + (f"<form method='post' class='inline' action='{r}/models/{quote(name)}/retire'>{csrf(name)}"
                  f"<input type='hidden' name='version' value='{challenger}'>"
                  "<button id='retire' class='secondary'>Retire the challenger</button></form>"
                  if challenger is not None else ""))
    def ver(v) -> str:
        return "none" if v is None else f"v{_num(v)}"

    return (f"<section class='card' aria-labelledby='h-actions'><h2 id='h-actions'>Rollout</h2><p>champion "
            f"{ver(info.get('champion'))}, challenger {ver(challenger)}; "
            f"<a href='{r}/models/{quote(name)}/runbook'>runbook</a></p>{actions}</section>"
            f"<section class='card' aria-labelledby='h-versions'><h2 id='h-versions'>Versions</h2>{table}</section>")

"""`tunesmith ui`, the built-in console, in a real headless browser (Debian's chromium driven by Playwright), next to
a real server: sign in with the serving token; the overview shows the registered models, the server's live rollout,
the objectives against the last monitor report and the cost; promote and roll back with the keyboard, each after a
confirmation, change what the running server answers; a retire reason typed into the page shows escaped; the
version's report, model card and the runbook open; the CSP holds; screenshots are kept in test-artifacts/."""

from __future__ import annotations

import httpx
import pytest
from tests.browser_helpers import artifacts_dir
from tests.families.loop_streams import LOOPS
from tests.families.test_loop import _config
from tests.serving.serve_helpers import LiveServer, wait_for

from tunesmith.config import config_from_dict
from tunesmith.monitoring.monitor import monitor
from tunesmith.ops.console import create_console, render_markdown
from tunesmith.pipeline import run
from tunesmith.registry import audit_log, get_version, open_store, promote, register_version, show_model
from tunesmith.serving import prediction_log_for
from tunesmith.serving.app import create_app

TOKEN = "console-test-token-0123456789"
EVIL = "<img src=x onerror=alert(1)>"



def _answering_version(url: str) -> str:
    answer = httpx.post(f"{url}/v1/classify", json={"input": "a good film"},
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-model-version"]


def test_the_console_shows_the_rollout_and_its_promote_and_rollback_change_what_a_server_answers(
        tmp_path, monkeypatch, loop_bert, browser):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TUNESMITH_SERVE_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    raw = _config(LOOPS["classification"], tmp_path, loop_bert)
    raw["monitoring"]["alerts"] = {"owner": "ml-oncall@example.com"}
    cfg = config_from_dict(raw)
    first = run(cfg)
    assert first.passed, first.reasons
    store = open_store(cfg.registry)
    promote(cfg.name, store=store)
    register_version(cfg.name, run_id=first.mlflow_run_id, store=store)  # v2: the challenger, not in traffic

    server = LiveServer(create_app(cfg.name, settings=cfg.serving, store=store,
                                   prediction_log=prediction_log_for(cfg.serving)))
    with server:
        assert _answering_version(server.url) == f"{cfg.name}:1"
        loop = LOOPS["classification"]
        for item in loop.traffic(30, 4, False):  # answers and their users' labels: live quality in the report
            body = httpx.post(f"{server.url}{loop.route}", json=item.request, timeout=30,
                              headers={"Authorization": f"Bearer {TOKEN}"}).json()
            rid = body.get("id") or body["request_id"]
            for index, value in loop.feedback(body, item.truth):
                httpx.post(f"{server.url}/v1/feedback", json={"request_id": rid, "index": index, "value": value},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).raise_for_status()
        report = monitor(cfg, window="40", store=store)  # the objectives section reads the last report
        assert report["live"]["versions"][1]["n"] == 30
        console = LiveServer(create_console(cfg, token=TOKEN, servers=[server.url], store=store,
                                            allowed_hosts=["127.0.0.1"]))
        with console:
            base = console.url
            assert httpx.post(f"{base}/models/{cfg.name}/promote", data={"version": "2", "confirm": "yes"}).status_code \
                == 401  # no token, no change
            state = httpx.get(f"{base}/api/state", headers={"Authorization": f"Bearer {TOKEN}"}).json()
            assert state["servers"][0]["serving"] == {"champion": 1} and state["cost"]["1"]["per_1k"] > 0

            page = browser.new_page()
            csp_errors: list[str] = []
            page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
            shots = artifacts_dir()
            page.goto(f"{base}/")
            assert page.url.endswith("/login")
            page.fill("#token", TOKEN)
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "Registered models" in page.content() and "champion v1" in page.inner_text("#main")
            assert "ml-oncall" not in page.content()  # the owner shows in the runbook, below
            assert "human review" in page.inner_text("#main") and "per 1k answers" in page.inner_text("#main")
            live = page.inner_text("#h-slo + p + p + table")
            assert f"accuracy {report['live']['versions'][1]['accuracy']:.4g}" in live and "30" in live
            page.screenshot(path=str(shots / "console-overview.png"), full_page=True)

            # promote v2 with the keyboard: focus the button, Enter, then confirm on the next page
            page.goto(f"{base}/models/{cfg.name}")
            page.focus("#promote-version")
            page.select_option("#promote-version", "2")
            page.keyboard.press("Tab")  # onto "Promote to champion"
            assert page.evaluate("document.activeElement.id") == "promote"
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "Promote loop-classification version 2 to champion?" in page.inner_text("#confirm-question")
            assert show_model(cfg.name, store=store)["champion"] == 1  # nothing changed before the confirmation
            page.screenshot(path=str(shots / "console-confirm.png"), full_page=True)
            page.focus("#reason")
            page.keyboard.type("beats v1 on the recent slice")
            page.keyboard.press("Tab")  # onto Confirm
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "version 2 is champion" in page.inner_text("[role=status]")
            assert wait_for(lambda: _answering_version(server.url) == f"{cfg.name}:2", timeout=20)

            # roll back from the page: the server answers with v1 again
            page.focus("#rollback")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            page.click("#confirm")  # no reason yet: the browser keeps the form (required field), nothing changes
            assert page.locator("#confirm-question").count() and show_model(cfg.name, store=store)["champion"] == 2
            page.fill("#reason", "latency on long reviews")
            page.click("#confirm")
            page.wait_for_selector("[role=status]")
            assert "rolled back to version 1" in page.inner_text("[role=status]")
            assert wait_for(lambda: _answering_version(server.url) == f"{cfg.name}:1", timeout=20)
            events = httpx.get(f"{server.url}/v1/rollout", headers={"Authorization": f"Bearer {TOKEN}"}).json()["events"]
            assert [e["version"] for e in events if e["event"] == "loaded" and e["role"] == "champion"][-2:] == [2, 1]

            # a new challenger, retired from the page with a reason that is HTML: shown as text
            register_version(cfg.name, run_id=first.mlflow_run_id, store=store)
            page.goto(f"{base}/models/{cfg.name}")
            page.click("#retire")
            page.fill("#reason", EVIL)
            page.click("#confirm")
            page.wait_for_selector("[role=status]")
            assert get_version(cfg.name, 3, store=store).tags["tunesmith.rollback_reason"] == EVIL
            assert EVIL in page.inner_text("#main") and page.locator("main img").count() == 0
            trail = [(e["action"], e["version"], e["reason"]) for e in audit_log(cfg.name, store=store)]
            assert trail == [("promote", 2, "beats v1 on the recent slice"), ("rollback", 1, "latency on long reviews"),
                             ("retire", 3, EVIL)]
            assert "latency on long reviews" in page.inner_text("#h-audit + table")
            page.screenshot(path=str(shots / "console-versions.png"), full_page=True)

            # the version's report and card, the model's runbook
            with page.expect_navigation():
                page.click("text=report >> nth=0")
            assert "tunesmith report" in page.title()
            page.goto(f"{base}/models/{cfg.name}/1/card")
            card = page.inner_text("#main")
            assert f"Model card for {cfg.name}" in card and '"classification"' in card and "Lineage" in card
            page.goto(f"{base}/models/{cfg.name}/runbook")
            assert "ml-oncall@example.com" in page.inner_text("#main") and page.locator("#tunesmithdriftdetected").count()
            page.screenshot(path=str(shots / "console-runbook.png"), full_page=True)
            assert not csp_errors, csp_errors
            page.close()


def test_the_markdown_renderer_escapes_html_but_keeps_the_runbooks_anchors():
    html = render_markdown('<a id="tunesmithdriftdetected"></a>\n## Drift\n\n<script>x()</script> `a<b`\n')
    assert "<span id='tunesmithdriftdetected'></span>" in html and "<script>" not in html
    assert "&lt;script&gt;" in html and "<h2>Drift</h2>" in html


def test_the_console_refuses_to_start_without_a_real_token(tmp_path):
    cfg = config_from_dict({"name": "m", "data": {"path": "x.csv"},
                            "registry": {"tracking_uri": f"sqlite:///{tmp_path}/m.db"}})
    with pytest.raises(ValueError, match="TUNESMITH_SERVE_TOKEN"):
        create_console(cfg, token="short")

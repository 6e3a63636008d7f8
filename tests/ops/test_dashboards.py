"""`tunesmith ops dashboards`: the executive, on-call and debug dashboards decode as Grafana dashboards (the
grafana-foundation-sdk types, generated from Grafana's schema) and follow the config; and every panel's PromQL returns
data from a real Prometheus that scrapes a real `tunesmith serve` under a short load, a monitor report, and evaluates
`tunesmith ops rules`' recording rules."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml
from tests.families.loop_streams import LOOPS
from tests.families.test_loop import _config
from tests.integration.test_cli_run import in_process

from tunesmith.config import config_from_dict
from tunesmith.monitoring.monitor import monitor
from tunesmith.ops import dashboards, write_rules
from tunesmith.ops.dashboards import targets
from tunesmith.pipeline import run
from tunesmith.registry import open_store, promote, register_version
from tunesmith.review.enqueue import enqueue

PROMETHEUS = shutil.which("prometheus")
TOKEN = "dashboards-test-token"


def _cfg(**over) -> object:
    return config_from_dict({"name": "sentiment", "data": {"path": "x.csv"}, **over})


def _decode(board: dict) -> dict:
    """The dashboard through Grafana's schema types and back: what they do not know is lost, so equality means every
    key is a known dashboard, panel, query or variable field."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    return json.loads(JSONEncoder(sort_keys=True).encode(Dashboard.from_json(board)))


def _all_panels(board: dict) -> list[dict]:
    return [p for top in board["panels"] for p in [top, *top.get("panels", [])]]


def test_dashboards_are_valid_grafana_json_and_follow_the_config(tmp_path):
    classifier = dashboards(_cfg(cost={"cpu_hour": 0.05, "currency": "EUR"}))
    assert set(classifier) == {"executive", "oncall", "debug"}
    for kind, board in classifier.items():
        assert _decode(board) == board, kind
        panels = _all_panels(board)
        assert len({p["id"] for p in panels}) == len(panels)  # Grafana keys panels by id
        assert len(board["uid"]) <= 40 and board["templating"]["list"][0]["type"] == "datasource"
        for panel in panels:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and panel["description"]
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(set(refs)) == len(refs) and all(refs), panel["title"]
    titles = {p["title"] for b in classifier.values() for p in _all_panels(b)}
    assert {"Live quality vs objective", "Error budget burn rate (1h)", "Cost per 1,000 answers (EUR)",
            "p95 latency vs objective", "Rollbacks (last hour)", "Live confusion (truth x predicted)",
            "Queue depth", "Drift test statistics"} <= titles
    p95 = next(p for p in _all_panels(classifier["oncall"]) if p["title"] == "p95 latency vs objective")
    assert [s["value"] for s in p95["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 0.5]  # slo.latency_p95_s

    # a regression model: its live-quality gauge, no confusion counts, no money without a price, no p95 objective
    regression = dashboards(_cfg(task="regression", monitoring={"slo": {"targets": {"mae": 0.5},
                                                                         "latency_p95_s": None}}), "prices")
    exprs = [e for b in regression.values() for _, e in targets(b)]
    assert any(e.startswith('tunesmith_live_quality{model="prices"}') for e in exprs)
    assert not any("confusion" in e or "cost_per_1k" in e or "latency_p95_errors" in e for e in exprs)
    assert all('model="prices"' in e for e in exprs if "rejected" not in e and "canary_percent" not in e)

    out = in_process("ops", "dashboards", "--config", _write_config(tmp_path), "--out", "boards", cwd=tmp_path).output
    files = sorted(p.name for p in (tmp_path / "boards").iterdir())
    assert files == ["provisioning.yaml", "ts-sentiment-debug.json", "ts-sentiment-executive.json",
                     "ts-sentiment-oncall.json"] and "wrote 3 dashboards" in out
    provider = yaml.safe_load((tmp_path / "boards/provisioning.yaml").read_text())["providers"][0]
    assert provider["type"] == "file" and Path(provider["options"]["path"]) == (tmp_path / "boards").resolve()


def _write_config(tmp_path: Path) -> str:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "sentiment", "data": {"path": "x.csv"}}))
    return "c.yaml"


# --- every panel returns data from a real Prometheus --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError):  # not listening yet
        return 0, b""


def _post(url: str, body: bytes, token: str | None = TOKEN, caller: str = "") -> int:
    headers = {"Content-Type": "application/json", "x-caller-key": caller}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _post_json(url: str, doc: dict, caller: str = "") -> dict:
    request = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}", "x-caller-key": caller})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({proc.returncode}): {proc.stdout.read()[-3000:]}")
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout:g}s")


def _query(prom: str, expr: str) -> list:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr.replace("$__rate_interval", "30s")})
    status, body = _get(url)
    doc = json.loads(body)
    assert status == 200 and doc["status"] == "success", (expr, doc)
    return doc["data"]["result"]



def test_every_panel_returns_data_from_prometheus_scraping_a_real_server(tmp_path, monkeypatch, loop_bert):
    assert PROMETHEUS, "prometheus missing: `apt-get install prometheus` (make test does it)"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    loop = LOOPS["classification"]
    port, prom_port, monitor_port = _free_port(), _free_port(), _free_port()
    raw = _config(loop, tmp_path, loop_bert)
    raw["serving"].update(port=port, challenger=True, canary={"percent": 50}, max_body_bytes=4096)
    raw["monitoring"]["slo"].update(accuracy=0.5, latency_p95_s=0.5)
    cfg = config_from_dict(raw)
    first = run(cfg)  # a champion, and the same run registered again as a challenger on a 50% canary
    assert first.passed, first.reasons
    store = open_store(cfg.registry)
    promote(cfg.name, store=store)
    register_version(cfg.name, run_id=first.mlflow_run_id, store=store)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TUNESMITH_SERVE_TOKEN": TOKEN}
    env.pop("MLFLOW_TRACKING_URI", None)
    serve = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "serve", "--model", cfg.name, "--config",
                              "config.yaml"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    procs: list[subprocess.Popen] = [serve]
    files = None
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: _get(f"{url}/readyz")[0] == 200, 120, "tunesmith serve ready", serve)
        # a short bounded load: 60 answers from both versions, with the users' labels; one unauthenticated call and
        # one oversized body are refused before inference
        for i, item in enumerate(loop.traffic(60, 5, False)):
            body = _post_json(f"{url}{loop.route}", item.request, caller=f"user-{i % 12}")
            for index, value in loop.feedback(body, item.truth):
                _post_json(f"{url}/v1/feedback", {"request_id": body.get("id") or body["request_id"], "index": index,
                                                  "value": value, "labeled_by": "dashboards-test"})
        assert _post(f"{url}{loop.route}", b'{"input": "no token"}', token=None) == 401
        assert _post(f"{url}{loop.route}", b'{"input": "' + b"x" * 8000 + b'"}') == 413
        # the review queue takes the least confident answers (and a random share): the human-review rate
        queued = enqueue(cfg.serving.predictions.url, cfg.name, threshold=0.9, random_share=0.1)
        report = monitor(cfg, window="60", store=store)  # the gauges a textfile collector would expose
        review, files = report["review"], report["files"]
        assert review["routed"] > 0 and review["rate"] == review["routed"] / report["predictions"], (queued, review)
        assert review["pending"] >= review["routed"] and review["status"] in ("ok", "breach")

        write_rules(cfg, tmp_path / "rules.yml")
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(Path(files["prometheus"]).parent))
        handler.log_message = lambda *a, **k: None
        textfile = http.server.ThreadingHTTPServer(("127.0.0.1", monitor_port), handler)
        threading.Thread(target=textfile.serve_forever, daemon=True).start()
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yml")],
            "scrape_configs": [
                {"job_name": "tunesmith", "authorization": {"credentials": TOKEN},
                 "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
                {"job_name": "tunesmith-monitor", "metrics_path": "/metrics.prom",
                 "static_configs": [{"targets": [f"127.0.0.1:{monitor_port}"]}]}]}))
        prometheus = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                       f"--web.listen-address=127.0.0.1:{prom_port}"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(prometheus)
        prom = f"http://127.0.0.1:{prom_port}"
        _wait(lambda: _get(f"{prom}/-/ready")[0] == 200, 60, "prometheus ready", prometheus)
        # more answers while Prometheus scrapes, so rates over the last 30s see them
        for round_ in range(3):
            for i, item in enumerate(loop.traffic(10, 10 + round_, False)):
                _post_json(f"{url}{loop.route}", item.request, caller=f"user-{i}")
            time.sleep(1.5)
        boards = dashboards(cfg)
        every = [(kind, title, expr) for kind, board in boards.items() for title, expr in targets(board)]
        assert len(every) >= 25
        empty: list = []

        def all_answer() -> bool:
            empty[:] = [(kind, title, expr) for kind, title, expr in every if not _query(prom, expr)]
            return not empty

        try:
            _wait(all_answer, 30, "every panel's query answers")
        except AssertionError:
            raise AssertionError("panels without data:\n" + "\n".join(map(str, empty))) from None
        targets_up = _query(prom, "up")
        assert {t["metric"]["job"] for t in targets_up if t["value"][1] == "1"} == {"tunesmith", "tunesmith-monitor"}
        loaded = {(r["metric"]["version"], r["metric"]["role"]) for r in _query(prom, 'tunesmith_model_loaded{model="'
                                                                                      f'{cfg.name}"}}')}
        assert loaded == {("1", "champion"), ("2", "challenger")}
        refused = {r["metric"]["reason"] for r in _query(prom, "tunesmith_rejected_total")}
        assert {"unauthorized", "body_too_large"} <= refused
        cost = _query(prom, f'tunesmith_cost_per_1k_inferences{{model="{cfg.name}"}}')
        assert cost and all(float(r["value"][1]) > 0 and r["metric"]["currency"] == "EUR" for r in cost)
        textfile.shutdown()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("tunesmith serve said:\n", serve.stdout.read()[-6000:])  # shown when the test fails

"""Rollout against a real server: sticky canary share, shadow never answers, automatic rollback on challenger
failures (clients see no 5xx), and promote/rollback in the registry change routing without a restart."""

from __future__ import annotations

import httpx
from tests.serving.serve_helpers import LiveServer, register, settings, wait_for

from tunesmith.monitoring import PredictionLog, read_predictions
from tunesmith.registry import audit_log, get_version, promote
from tunesmith.registry import rollback as registry_rollback
from tunesmith.serving import create_app
from tunesmith.serving.router import Role
from tunesmith.serving.state import ROLLED_BACK, ROLLOUT_TAG


def _two_versions(store, tmp_path, classifier_dirs) -> None:
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)  # v1 champion
    register(store, tmp_path, "clf", classifier_dirs[1], champion=False)  # v2 challenger


def _metric(client: httpx.Client, prefix: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_canary_share_is_on_target_and_sticky(store, tmp_path, classifier_dirs):
    _two_versions(store, tmp_path, classifier_dirs)
    app = create_app("clf", settings=settings(challenger=True, canary={"percent": 10}, max_batch_size=32), store=store)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        versions = []
        for i in range(2000):
            r = client.post("/v1/classify", json={"input": "great film"}, headers={"x-caller-key": f"user-{i}"})
            assert r.status_code == 200
            versions.append(r.headers["x-model-version"])
            assert r.json()["model_version"] == int(versions[-1].split(":")[1])
        share = versions.count("clf:2") / len(versions)
        assert abs(share - 0.10) <= 0.02, share
        # Sticky: a caller keeps its model.
        for key in ("user-3", "user-17"):
            seen = {client.post("/v1/classify", json={"input": "dull"}, headers={"x-caller-key": key})
                    .headers["x-model-version"] for _ in range(5)}
            assert seen == {versions[int(key.split("-")[1])]}
        served_by_challenger = _metric(client, 'tunesmith_requests_total{model="clf",role="challenger"')
        assert served_by_challenger == versions.count("clf:2") + sum(5 for i in (3, 17) if versions[i] == "clf:2")
        assert _metric(client, "tunesmith_canary_percent") == 10


def test_shadow_answers_never_reach_clients_and_are_compared(store, tmp_path, classifier_dirs):
    _two_versions(store, tmp_path, classifier_dirs)
    log = PredictionLog(f"sqlite:///{tmp_path}/pred.db")
    app = create_app("clf", settings=settings(shadow=True), store=store, prediction_log=log)  # implies challenger
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        replies = [client.post("/v1/classify", json={"input": f"great plot {i}"}) for i in range(40)]
        assert {r.status_code for r in replies} == {200}
        assert {r.headers["x-model-version"] for r in replies} == {"clf:1"}
        assert {r.json()["model_version"] for r in replies} == {1}
        assert wait_for(lambda: _metric(client, "tunesmith_shadow_comparisons_total") == 40)
        assert _metric(client, "tunesmith_shadow_latency_delta_seconds_count") == 40
    rows = read_predictions(log.url, model="clf")  # the server flushed the log on shutdown
    roles = [r["role"] for r in rows]
    assert roles.count("champion") == 40 and roles.count("shadow") == 40
    shadow_ids = {r["request_id"] for r in rows if r["role"] == "shadow"}
    assert shadow_ids == {r.headers["x-request-id"] for r in replies}
    assert all(r["version"] == 2 for r in rows if r["role"] == "shadow")


def test_failing_challenger_is_rolled_back_and_clients_see_no_5xx(store, tmp_path, classifier_dirs):
    _two_versions(store, tmp_path, classifier_dirs)
    cfg = settings(challenger=True, canary={"percent": 50},
                   rollback={"window": 20, "min_requests": 5, "max_error_rate": 0.2})
    app = create_app("clf", settings=cfg, store=store)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        state = app.state.serving

        def broken(texts):
            raise RuntimeError("injected challenger failure")

        state.slots[Role.CHALLENGER].batcher.fn = broken
        statuses, versions = [], []
        for i in range(200):
            r = client.post("/v1/classify", json={"input": "boring"}, headers={"x-caller-key": f"k{i}"})
            statuses.append(r.status_code)
            versions.append(r.headers.get("x-model-version"))
        assert set(statuses) == {200}  # failures fell back to the champion
        assert set(versions) == {"clf:1"}
        assert Role.CHALLENGER not in state.slots
        assert [e["event"] for e in state.events].count("rollback") == 1
        assert "error rate" in next(e for e in state.events if e["event"] == "rollback")["reason"]
        assert _metric(client, "tunesmith_rollbacks_total") == 1
        assert _metric(client, "tunesmith_canary_percent") == 0
        # The registry: challenger alias gone, the version marked rolled back, the champion untouched.
        assert wait_for(lambda: "challenger" not in get_version("clf", 2, store=store).aliases)
        v2 = get_version("clf", 2, store=store)
        assert v2.tags[ROLLOUT_TAG] == ROLLED_BACK and "error rate" in v2.tags["tunesmith.rollback_reason"]
        (audited,) = audit_log("clf", store=store)  # the audit trail says which server did it, and why
        assert audited["action"] == "auto_rollback" and audited["version"] == 2 and "error rate" in audited["reason"]
        assert audited["who"].startswith("tunesmith serve on ")
        assert get_version("clf", 1, store=store).aliases == ["champion"]
        # The watcher does not bring a rolled-back version back.
        r = client.post("/v1/classify", json={"input": "x"})
        assert r.status_code == 200 and r.headers["x-model-version"] == "clf:1"


def test_promote_and_rollback_change_a_running_server(store, tmp_path, classifier_dirs):
    _two_versions(store, tmp_path, classifier_dirs)
    app = create_app("clf", settings=settings(challenger=True), store=store)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        def version() -> str:
            return client.post("/v1/classify", json={"input": "great"}).headers["x-model-version"]

        assert version() == "clf:1"
        promote("clf", store=store)  # what `tunesmith models promote clf` does
        assert wait_for(lambda: version() == "clf:2")
        assert client.get("/readyz").json()["serving"] == {"champion": "clf:2"}
        registry_rollback("clf", store=store)  # `tunesmith models rollback clf`
        assert wait_for(lambda: version() == "clf:1")
        assert [e["event"] for e in app.state.serving.events].count("loaded") >= 3

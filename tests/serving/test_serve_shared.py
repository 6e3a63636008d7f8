"""Rollback state shared by replicas (`serving.shared_state`): one window over every replica's challenger outcomes,
one rollback decision that the others follow, on a real redis-server and on a SQLite file; a store that does not
answer leaves each server judging its own window and answering as before."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest
from tests.serving.serve_helpers import register, settings

from tunesmith.config import RollbackConfig
from tunesmith.registry import get_version
from tunesmith.serving.router import Role
from tunesmith.serving.shared import Decision, SharedRollout, open_shared_store
from tunesmith.serving.state import ROLLED_BACK, ROLLOUT_TAG, ServingState

SLO = RollbackConfig(window=10, min_requests=6, max_error_rate=0.2)


@pytest.fixture(params=["redis", "sqlite"])
def shared_url(request, tmp_path):
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return f"sqlite:///{tmp_path / 'rollout.db'}"


def _replica(url: str, name: str, errors: list | None = None, retry_s: float = 5.0) -> SharedRollout:
    errors = errors if errors is not None else []
    return SharedRollout(open_shared_store(url), url=url, replica=name, on_error=lambda: errors.append(1),
                         retry_s=retry_s)


def _dead_redis_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://:hunter2@127.0.0.1:{s.getsockname()[1]}/0"  # nothing listens there once closed


def test_replicas_judge_one_window_and_the_first_to_see_the_breach_decides(shared_url):
    async def scenario():
        a, b = _replica(shared_url, "a"), _replica(shared_url, "b")
        try:
            # 3 failures each: neither replica alone has min_requests outcomes, together they breach.
            for _ in range(2):
                assert (await a.judge("clf", 2, ok=False, latency_s=0.01, slo=SLO)).decision is None
                assert (await b.judge("clf", 2, ok=False, latency_s=0.01, slo=SLO)).decision is None
            assert (await a.judge("clf", 2, ok=False, latency_s=0.01, slo=SLO)).decision is None
            first = await b.judge("clf", 2, ok=False, latency_s=0.01, slo=SLO)
            assert first.decided_here and first.decision.by == "b"
            assert "error rate 100.0%" in first.decision.reason and "last 6 requests" in first.decision.reason
            follower = await a.judge("clf", 2, ok=True, latency_s=0.01, slo=SLO)
            assert not follower.decided_here and follower.decision.reason == first.decision.reason
            assert (await a.decided("clf", 2)).by == "b"
            assert await a.decided("clf", 3) is None  # another challenger version starts clean
            assert (await a.judge("clf", 3, ok=True, latency_s=0.01, slo=SLO)).decision is None
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())


def test_the_shared_window_keeps_the_last_n_outcomes(shared_url):
    store = open_shared_store(shared_url)
    try:
        for i in range(25):
            outcomes, decision = store.record("clf", 2, i % 5 != 0, i / 1000, 10)
        assert len(outcomes) == 10 and decision is None
        assert sorted(round(lat * 1000) for _, lat in outcomes) == list(range(15, 25))
        assert [ok for ok, lat in outcomes if round(lat * 1000) == 20] == [False]
    finally:
        store.close()


def test_a_decision_is_recorded_once(shared_url):
    stores = [open_shared_store(shared_url) for _ in range(2)]
    try:
        first, won = stores[0].decide("clf", 2, Decision("error rate 50%", "a", "t0"))
        second, won_too = stores[1].decide("clf", 2, Decision("p95 latency 900 ms", "b", "t1"))
        assert won and not won_too
        assert first == second == Decision("error rate 50%", "a", "t0")
    finally:
        for store in stores:
            store.close()


def test_a_store_that_does_not_answer_is_skipped_warned_once_and_counted(caplog):
    url = _dead_redis_url()
    errors: list = []
    replica = _replica(url, "a", errors, retry_s=60)

    async def scenario():
        start = time.monotonic()
        verdicts = [await replica.judge("clf", 2, ok=False, latency_s=0.01, slo=SLO) for _ in range(20)]
        assert time.monotonic() - start < 5  # one timed-out call, then skipped until retry_s passes
        return verdicts

    with caplog.at_level(logging.WARNING, logger="tunesmith.serving"):
        assert asyncio.run(scenario()) == [None] * 20  # None: judge this server's own window
    assert len(errors) == 1 and not replica.reachable
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert "hunter2" not in caplog.text and ":***@127.0.0.1" in warnings[0]


def _broken(texts):
    raise RuntimeError("injected challenger failure")


def _serving(store, url: str) -> ServingState:
    cfg = settings(challenger=True, canary={"percent": 100}, shared_state=url, poll_interval_s=60,
                   rollback={"window": 10, "min_requests": 6, "max_error_rate": 0.2})
    return ServingState("clf", settings=cfg, store=store)


def test_one_replica_rolls_back_and_the_other_follows_without_counting_it(store, tmp_path, classifier_dirs,
                                                                          shared_url):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    register(store, tmp_path, "clf", classifier_dirs[1], champion=False)

    async def scenario():
        a, b = _serving(store, shared_url), _serving(store, shared_url)
        await a.start()
        await b.start()
        try:
            a.slots[Role.CHALLENGER].batcher.fn = _broken  # only replica a's challenger fails
            for i in range(6):
                answer = await a.predict("/v1/classify", "boring", caller_key=f"k{i}")
                assert answer.role is Role.CHAMPION  # the champion answered what the challenger could not
            assert Role.CHALLENGER not in a.slots
            assert Role.CHALLENGER in b.slots  # b has not polled yet
            await b.follow_shared()  # what b's registry watcher does every poll_interval_s
            assert Role.CHALLENGER not in b.slots
            (mine,) = [e for e in a.events if e["event"] == "rollback"]
            (theirs,) = [e for e in b.events if e["event"] == "rollback"]
            assert theirs["reason"] == mine["reason"] and theirs["decided_by"] == mine["decided_by"] == a.shared.replica
            return a, b
        finally:
            await a.stop()
            await b.stop()

    a, b = asyncio.run(scenario())
    assert _rollbacks(a) == 1 and _rollbacks(b) == 0  # counted only where it was decided (the series starts at 0)
    v2 = get_version("clf", 2, store=store)
    assert v2.tags[ROLLOUT_TAG] == ROLLED_BACK and "challenger" not in v2.aliases


def test_the_store_down_leaves_each_server_judging_its_own_window(store, tmp_path, classifier_dirs):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    register(store, tmp_path, "clf", classifier_dirs[1], champion=False)

    async def scenario():
        state = _serving(store, _dead_redis_url())
        await state.start()
        try:
            state.slots[Role.CHALLENGER].batcher.fn = _broken
            roles = [(await state.predict("/v1/classify", "dull", caller_key=f"k{i}")).role for i in range(6)]
            assert roles == [Role.CHAMPION] * 6
            assert Role.CHALLENGER not in state.slots  # rolled back on this server's own window
            await state.follow_shared()  # a poll while the store is down changes nothing, raises nothing
            return state
        finally:
            await state.stop()

    state = asyncio.run(scenario())
    assert state.metrics.registry.get_sample_value("tunesmith_shared_state_errors_total") >= 1
    assert not state.shared.reachable and ":***@127.0.0.1" in state.shared.url  # what /readyz shows
    assert _rollbacks(state) == 1


def test_a_store_that_goes_down_mid_traffic_costs_no_answer(store, tmp_path, classifier_dirs, redis_url, caplog):
    import redis

    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    register(store, tmp_path, "clf", classifier_dirs[1], champion=False)

    async def scenario():
        state = _serving(store, redis_url)
        await state.start()
        try:
            for i in range(3):  # the challenger answers while the store is up
                assert (await state.predict("/v1/classify", "fine", caller_key=f"k{i}")).role is Role.CHALLENGER
            assert state.shared.reachable
            redis.Redis.from_url(redis_url).shutdown(nosave=True)
            state.slots[Role.CHALLENGER].batcher.fn = _broken
            roles = []
            while Role.CHALLENGER in state.slots and len(roles) < 10:
                roles.append((await state.predict("/v1/classify", "dull", caller_key="k9")).role)
            assert roles == [Role.CHAMPION] * 3  # 3 failures after 3 good answers breach this server's own window
            return state
        finally:
            await state.stop()

    with caplog.at_level(logging.WARNING, logger="tunesmith.serving"):
        state = asyncio.run(scenario())
    assert not state.shared.reachable and _rollbacks(state) == 1
    assert sum("is unreachable" in r.getMessage() for r in caplog.records) == 1


def _rollbacks(state: ServingState) -> float | None:
    labels = {"model": "clf", "version": "2", "reason": "error_rate"}
    return state.metrics.registry.get_sample_value("tunesmith_rollbacks_total", labels)

"""The job store: one claim wins a race, a cancel stops the heartbeat, expired leases and cursor pagination."""

from __future__ import annotations

import threading
import time

from tunesmith.jobs.store import JobStore


def test_claim_race_has_exactly_one_winner(tmp_path):
    store = JobStore(None, state_dir=tmp_path)
    job = store.create_job("team", spec={"model": "m", "training_file": "file-x"})
    barrier, wins = threading.Barrier(8), []

    def racer(i):
        other = JobStore(None, state_dir=tmp_path)  # its own engine, like another worker process
        barrier.wait()
        if other.claim(job["id"], f"w{i}", lease_s=30):
            wins.append(i)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    got = store.get_job(job["id"])
    assert got["status"] == "running" and got["tunesmith"]["worker_id"] == f"w{wins[0]}"
    assert got["tunesmith"]["attempts"] == 1


def test_cancel_stops_the_heartbeat_and_leases_expire(tmp_path):
    store = JobStore(None, state_dir=tmp_path)
    a = store.create_job("team", spec={"model": "m", "training_file": "f"})
    assert store.claim(a["id"], "w", lease_s=30) and store.heartbeat(a["id"], "w", lease_s=30)
    assert not store.heartbeat(a["id"], "intruder", lease_s=30)  # only the holder renews
    store.request_cancel(a["id"], "team")
    assert not store.heartbeat(a["id"], "w", lease_s=30) and store.cancel_requested(a["id"])
    b = store.create_job("team", spec={"model": "m", "training_file": "f"})
    assert store.claim(b["id"], "w2", lease_s=0.05)
    time.sleep(0.1)
    assert [j["id"] for j in store.expired_leases()] == [b["id"]]
    assert store.requeue(b["id"], reason="test") and store.get_job(b["id"])["status"] == "queued"
    assert not store.requeue(b["id"], reason="again")  # only one reaper requeues it


def test_pagination_is_newest_first_with_a_cursor(tmp_path):
    store = JobStore(None, state_dir=tmp_path)
    ids = [store.create_job("team", spec={"model": "m", "training_file": "f"})["id"] for _ in range(5)]
    page, more = store.list_jobs("team", limit=2)
    assert [j["id"] for j in page] == ids[::-1][:2] and more
    page, more = store.list_jobs("team", after=page[-1]["id"], limit=10)
    assert [j["id"] for j in page] == ids[::-1][2:] and not more
    assert store.list_jobs("someone-else")[0] == []
    for i in range(3):
        store.add_event(ids[0], f"e{i}")
    events, more = store.list_events(ids[0], limit=2)
    assert [e["message"] for e in events] == ["e2", "e1"] and more


def test_a_queued_job_whose_message_was_lost_is_sent_again_once(tmp_path):
    store = JobStore(None, state_dir=tmp_path)
    job = store.create_job("team", spec={"model": "m", "training_file": "f"})
    assert store.stale_queued(older_than_s=60) == []  # just queued: its message is on the way
    time.sleep(0.5)
    assert store.stale_queued(older_than_s=0.3) == [job["id"]]
    assert store.stale_queued(older_than_s=5) == []  # bumped just now: one reaper re-sends it, not every worker
    assert store.claim(job["id"], "w", lease_s=30)
    time.sleep(0.05)
    assert store.stale_queued(older_than_s=0.01) == []  # running jobs are the lease's business
    assert store.release(job["id"], "w", reason="shutdown") and store.get_job(job["id"])["status"] == "queued"
    assert not store.release(job["id"], "w", reason="again")


def test_heartbeat_errors_stop_training_before_the_lease_runs_out(tmp_path):
    from tunesmith.jobs.runner import Heartbeat

    class Broken:
        def heartbeat(self, *a, **k):
            raise RuntimeError("database is locked")

    beat = Heartbeat(Broken(), "ftjob-x", "w", lease_s=0.3)
    beat.start()
    beat.join(timeout=5)
    assert beat.lost == "lease_lost"  # the worker stops instead of training on without a lease

"""Only committed checkpoints count; resume refuses clearly when there is nothing to resume."""

from __future__ import annotations

import json

import pytest
from tests.training.conftest import make_config

from tunesmith.training import TrainingError, find_last_complete_checkpoint, train
from tunesmith.training.checkpoints import (
    MARKER,
    atomic_dir,
    mark_complete,
    prune,
    recover_dir,
    remove_incomplete,
)


def _checkpoint(root, step, *, complete=True):
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"x" * 64)
    (path / "trainer_state.json").write_text("{}")
    if complete:
        mark_complete(path)
    return path


def test_find_last_complete_checkpoint_ignores_incomplete_dirs(tmp_path):
    assert find_last_complete_checkpoint(tmp_path / "missing") is None
    _checkpoint(tmp_path, 5)
    best = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 15, complete=False)  # killed before the marker
    truncated = _checkpoint(tmp_path, 20)  # marker written, then a file lost bytes
    (truncated / "model.safetensors").write_bytes(b"x" * 10)
    garbled = _checkpoint(tmp_path, 25)
    (garbled / MARKER).write_text("{not json")
    (tmp_path / "tmp-checkpoint-30").mkdir()
    (tmp_path / "checkpoint-final").mkdir()  # not a step number

    assert find_last_complete_checkpoint(tmp_path) == best
    removed = {p.name for p in remove_incomplete(tmp_path)}
    assert removed == {"checkpoint-15", "checkpoint-20", "checkpoint-25", "tmp-checkpoint-30"}
    assert json.loads((best / MARKER).read_text())["step"] == 10


def test_prune_keeps_newest_and_best(tmp_path):
    paths = [_checkpoint(tmp_path, s) for s in (5, 10, 15, 20)]
    prune(tmp_path, keep=1, protect=paths[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-20", "checkpoint-5"]


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("2")
        raise RuntimeError("killed halfway")
    assert (target / "a.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_model_dir, bundle, tmp_path):
    _checkpoint(tmp_path / "run" / "checkpoints", 5, complete=False)
    with pytest.raises(TrainingError, match="cannot resume: no complete checkpoint in .*start the run again without resume"):
        train(make_config(tiny_model_dir, max_steps=2), bundle, tmp_path / "run", resume=True)


def test_fresh_run_refuses_to_mix_with_an_earlier_runs_checkpoints(tiny_model_dir, bundle, tmp_path):
    _checkpoint(tmp_path / "run" / "checkpoints", 5)
    with pytest.raises(TrainingError, match="holds checkpoints of an earlier run; resume it"):
        train(make_config(tiny_model_dir, max_steps=2), bundle, tmp_path / "run")


def _swap_crashes_at(monkeypatch, crash_on_call: int):
    """Make the n-th os.replace inside atomic_dir (tunesmith.io) die, as a kill at that point would."""
    from tunesmith import io

    calls = {"n": 0}
    real = io.os.replace

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == crash_on_call:
            raise KeyboardInterrupt("killed")
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", replace)


def test_atomic_dir_recovers_a_crash_between_its_two_renames(tmp_path, monkeypatch):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with monkeypatch.context() as m:
        _swap_crashes_at(m, 2)  # model -> .old-model done; .tmp-model -> model not
        with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("2")
    assert not target.exists() and (tmp_path / ".old-model" / "a.txt").read_text() == "1"

    assert recover_dir(target)  # a reader can restore it before looking
    assert (target / "a.txt").read_text() == "1" and not (tmp_path / ".old-model").exists()
    assert not recover_dir(target)


def test_atomic_dir_restores_before_it_clears_leftovers(tmp_path, monkeypatch):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with monkeypatch.context() as m:
        _swap_crashes_at(m, 2)
        with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("2")

    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:  # the next save fails too: the old copy survives
        raise RuntimeError("disk full")
    assert (target / "a.txt").read_text() == "1"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("3")
    assert (target / "a.txt").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_dir_crash_before_the_swap_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with monkeypatch.context() as m:
        _swap_crashes_at(m, 1)  # nothing renamed yet: a complete .tmp-model beside the untouched model
        with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("2")
    assert (target / "a.txt").read_text() == "1"
    with atomic_dir(target) as tmp:  # the stale temp dir is cleared, not mixed into the new one
        assert list(tmp.iterdir()) == []
        (tmp / "b.txt").write_text("4")
    assert [p.name for p in target.iterdir()] == ["b.txt"]

"""Only committed checkpoints count; resume refuses clearly when there is nothing to resume."""

from __future__ import annotations

import json

import pytest
from tests.training.conftest import make_config

from tunesmith.training import TrainingError, find_last_complete_checkpoint, train
from tunesmith.training.checkpoints import MARKER, atomic_dir, mark_complete, prune, remove_incomplete


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

"""Run folders: a fresh run gets a new one; --resume finds the newest interrupted run, not a validate folder."""

import pytest

from tunesmith.config import config_from_dict
from tunesmith.pipeline import new_run_dir, pick_run_dir


def cfg(tmp_path):
    return config_from_dict({"name": "m", "output_dir": str(tmp_path / "runs"), "data": {"path": "a.csv"}})


def test_new_run_dirs_never_collide(tmp_path):
    c = cfg(tmp_path)
    dirs = {new_run_dir(c) for _ in range(3)}
    assert len(dirs) == 3 and all(d.is_dir() and d.parent == tmp_path / "runs" / "m" for d in dirs)


def test_resume_picks_the_newest_run_with_checkpoints(tmp_path):
    c = cfg(tmp_path)
    with pytest.raises(FileNotFoundError, match="no interrupted run of 'm'"):
        pick_run_dir(c, resume=True, run_dir=None)
    (tmp_path / "runs/m/20260101-000000/checkpoints").mkdir(parents=True)
    interrupted = tmp_path / "runs/m/20260102-000000"
    (interrupted / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs/m/20260103-000000").mkdir()  # a later `validate`: no checkpoints
    assert pick_run_dir(c, resume=True, run_dir=None) == interrupted
    assert pick_run_dir(c, resume=True, run_dir=str(tmp_path / "x")) == tmp_path / "x"

"""Run folders: a fresh run gets a new one; --resume finds the newest interrupted run, not a validate folder."""

import pytest

from tunesmith.config import config_from_dict
from tunesmith.pipeline import new_run_dir, pick_run_dir
from tunesmith.training.checkpoints import mark_complete


def cfg(tmp_path):
    return config_from_dict({"name": "m", "output_dir": str(tmp_path / "runs"), "data": {"path": "a.csv"}})


def test_new_run_dirs_never_collide(tmp_path):
    c = cfg(tmp_path)
    dirs = {new_run_dir(c) for _ in range(3)}
    assert len(dirs) == 3 and all(d.is_dir() and d.parent == tmp_path / "runs" / "m" for d in dirs)


def _checkpoint(run, step=4, complete=True):
    ckpt = run / "checkpoints" / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"weights")
    if complete:
        mark_complete(ckpt)


def test_resume_picks_the_newest_unfinished_run_with_a_complete_checkpoint(tmp_path):
    c = cfg(tmp_path)
    with pytest.raises(FileNotFoundError, match="no interrupted run of 'm'"):
        pick_run_dir(c, resume=True, run_dir=None)
    runs = tmp_path / "runs/m"
    _checkpoint(runs / "20260101-000000")
    interrupted = runs / "20260102-000000"
    _checkpoint(interrupted)
    _checkpoint(runs / "20260103-000000", complete=False)  # killed before its first checkpoint was committed
    _checkpoint(runs / "20260104-000000")
    (runs / "20260104-000000/model").mkdir()  # finished, kept its checkpoints (training.keep_checkpoints)
    (runs / "20260105-000000").mkdir()  # a later `validate`: no checkpoints
    assert pick_run_dir(c, resume=True, run_dir=None) == interrupted
    assert pick_run_dir(c, resume=True, run_dir=str(tmp_path / "x")) == tmp_path / "x"


def test_champion_lookup_is_none_only_when_there_is_no_champion(tmp_path):
    from tunesmith.pipeline import _champion_dir
    from tunesmith.registry import RegistryError

    said = []
    assert _champion_dir(cfg(tmp_path), lambda name, alias, registry: None, said.append) is None
    assert "no champion of 'm' yet" in said[0]
    assert _champion_dir(cfg(tmp_path), lambda name, alias, registry: tmp_path, said.append) == tmp_path

    def broken(exc):
        def lookup(name, alias, registry):
            raise exc
        return lookup

    # A registry that fails (server down, download broken) must stop the run, not skip the champion gates.
    for exc in (RegistryError("tracking server unreachable"), ConnectionError("refused"), OSError("disk full")):
        with pytest.raises(type(exc)):
            _champion_dir(cfg(tmp_path), broken(exc), said.append)


def test_calibration_ships_with_the_model(tmp_path):
    from tunesmith.families import get
    from tunesmith.pipeline import _ship_files

    model = tmp_path / "model"
    model.mkdir()
    _ship_files(get("classification"), tmp_path, model)  # nothing evaluated: nothing to copy
    assert not (model / "calibration.json").exists()
    (tmp_path / "calibration.json").write_text('{"temperature": 1.5}\n')
    _ship_files(get("classification"), tmp_path, model)
    assert (model / "calibration.json").read_text() == '{"temperature": 1.5}\n'


def test_run_names_each_data_check_that_found_something():
    from tunesmith.pipeline import _say_checks

    lines: list[str] = []
    checks = {"leakage": {"status": "pass", "rows": 0},
              "pii": {"status": "warn", "presidio": "off", "rows_with_pii": 2,
                      "by_type": {"EMAIL": {"rows": 2, "findings": 2, "examples": []}}},
              "label_issues": {"status": "n/a", "skipped": "not applicable to task causal-lm"}}
    _say_checks(checks, lines.append)
    assert len(lines) == 1 and lines[0].startswith("data check pii (warn): 2 rows") and "EMAIL 2" in lines[0]

"""`tunesmith evaluate` through the CLI app (in-process: the real CLI's subprocess runs are test_cli_run's): bad
--model input is one clear error (exit 2), the model dir is only read, and a champion that cannot be compared fails
its gates instead of passing them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.integration.test_cli_run import in_process as tunesmith
from tests.integration.test_cli_run import write_project

from tunesmith.families.classification.model import build_model, load_tokenizer

pytestmark = pytest.mark.integration


def save_classifier(base: str, labels: list[str], path: Path) -> Path:
    build_model(base, labels).save_pretrained(path)
    load_tokenizer(base).save_pretrained(path)
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_bad_model_and_champion_paths_exit_2(tmp_path, tiny_model_dir):
    write_project(tmp_path, tiny_model_dir, ["accuracy >= 0"], rows=120)
    proc = tunesmith("evaluate", "config.yaml", "--model", "./nomodel", cwd=tmp_path, check_code=2)
    assert "nomodel: no such model dir" in proc.stderr and "hint: pass a trained model folder" in proc.stderr
    assert "Traceback" not in proc.stderr

    save_classifier(tiny_model_dir, ["x", "y"], tmp_path / "other")
    proc = tunesmith("evaluate", "config.yaml", "--model", "other", cwd=tmp_path, check_code=2)
    assert "the model predicts ['x', 'y'], but the data has labels ['neg', 'pos']" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = tunesmith("evaluate", "config.yaml", "--model", "other", "--champion", "nochamp", cwd=tmp_path, check_code=2)
    assert "--champion nochamp: not a model dir" in proc.stderr

    proc = tunesmith("evaluate", "config.yaml", "--model", "other", "--set", "gates=['macro_f2 >= 0.5']",
                     cwd=tmp_path, check_code=2)
    assert "gates: unknown metric(s) macro_f2; known metrics: accuracy, macro_f1" in proc.stderr


def test_read_only_model_and_a_champion_that_cannot_be_compared(tmp_path, tiny_model_dir):
    write_project(tmp_path, tiny_model_dir, ["accuracy >= 0", "vs_champion.accuracy >= -1"], rows=120)
    model = save_classifier(tiny_model_dir, ["neg", "pos"], tmp_path / "registered")
    save_classifier(tiny_model_dir, ["neg", "pos", "meh"], tmp_path / "old-champion")
    before = snapshot(model)
    for p in [model, *model.iterdir()]:
        p.chmod(0o555 if p.is_dir() else 0o444)  # like a registered artifact (root ignores modes: hence the snapshot)

    proc = tunesmith("evaluate", "config.yaml", "--model", model, "--champion", "old-champion", cwd=tmp_path,
                     check_code=1)
    assert "champion not compared: champion has labels ['neg', 'pos', 'meh']" in proc.stdout
    assert snapshot(model) == before
    (run,) = [p.parent for p in (tmp_path / ".tunesmith/runs/toy-sentiment").glob("*/calibration.json")]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["champion_status"].startswith("not comparable: ") and metrics["gates"]["passed"] is False

    proc = tunesmith("evaluate", "config.yaml", "--model", model, cwd=tmp_path)  # no champion: its gate waits
    assert "no champion yet" in proc.stdout and snapshot(model) == before

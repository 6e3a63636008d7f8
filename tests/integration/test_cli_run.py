"""The real CLI end to end on a tiny model: run -> gates -> registry -> promote/rollback, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.mlflow_env import mlflow_uris
from tests.toy import make_reviews

pytestmark = pytest.mark.integration


def tunesmith(*args, cwd: Path, check_code: int | None = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": ""}
    env.pop("MLFLOW_TRACKING_URI")
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    if check_code is not None:
        assert proc.returncode == check_code, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def in_process(*args, cwd: Path, check_code: int | None = 0):
    """The CLI app in this process, run from `cwd` (no interpreter start or torch import per call): exit code,
    stdout and stderr apart. The messages and codes are the app's; `tunesmith` above runs the real entry point."""
    here = os.getcwd()
    os.chdir(cwd)
    try:
        from typer.testing import CliRunner

        from tunesmith.cli import app

        result = CliRunner(env={"MLFLOW_TRACKING_URI": None}).invoke(app, [str(a) for a in args])
    finally:
        os.chdir(here)
    if check_code is not None:
        assert result.exit_code == check_code, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def write_project(tmp_path: Path, model_dir: str, gates: list[str], rows: int = 240) -> Path:
    df = make_reviews(rows, seed=7)
    df.loc[5, "text"] = ""  # a bad row: quarantined, counted, not lost
    df.to_csv(tmp_path / "reviews.csv", index=False)
    cfg = {
        "name": "toy-sentiment",
        "data": {"path": "reviews.csv", "labels": ["neg", "pos"], "slice_columns": ["genre"],
                 "split": {"eval": 0.2, "test": 0.25}},
        "model": {"base": model_dir, "max_length": 32},
        "method": {"kind": "full"},
        "training": {"epochs": 4, "batch_size": 16, "learning_rate": 5e-3, "early_stopping_patience": None},
        "evaluation": {"slices": ["genre", "text_length"], "bootstrap": {"samples": 200}},
        "gates": gates,
    }
    (tmp_path / "config.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    return tmp_path / "config.yaml"


def test_run_registers_promotes_and_rolls_back(tmp_path, tiny_model_dir):
    write_project(tmp_path, tiny_model_dir, ["accuracy >= 0.6", "vs_champion.macro_f1 >= -1"])
    out = tunesmith("run", "config.yaml", cwd=tmp_path).stdout
    assert "gate decision: PASSED" in out
    assert "registered toy-sentiment version 1 as challenger" in out
    assert "mlflow.pyfunc.load_model('models:/toy-sentiment/1')" in out
    import mlflow
    import pandas as pd

    from tunesmith.registry import open_store

    with mlflow_uris(open_store(workdir=tmp_path)):  # what the CLI printed works, in the user's own Python
        [answer] = mlflow.pyfunc.load_model("models:/toy-sentiment/1").predict(pd.DataFrame({"text": ["great film"]}))
    assert answer["label"] in {"neg", "pos"} and set(answer["scores"]) == {"neg", "pos"}

    run_dirs = list((tmp_path / ".tunesmith/runs/toy-sentiment").iterdir())
    assert len(run_dirs) == 1
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert metrics["tuned"]["accuracy"] >= 0.6 and "baseline" in metrics and metrics["gates"]["passed"] is True
    quarantine = (run_dirs[0] / "quarantine.jsonl").read_text().splitlines()
    assert len(quarantine) == 1 and "reviews.csv:7" in quarantine[0]
    html = (run_dirs[0] / "report.html").read_text()
    assert "<img" in html and "data:image/png;base64," in html
    assert not list((run_dirs[0] / "model").glob("*.bin"))
    assert metrics["champion_status"] == "none"
    assert (run_dirs[0] / "calibration.json").read_text() == (run_dirs[0] / "model/calibration.json").read_text()
    assert (run_dirs[0] / "model/seen_texts.npy").is_file()  # which texts it trained on, for later comparisons
    keys = metrics["training_settings"]["keys"]  # the config pins the schedule and rate: nothing derived
    assert {k: v["source"] for k, v in keys.items()} == dict.fromkeys(keys, "config") and keys["epochs"]["value"] == 4
    assert "Settings trained with: epochs 4" in (run_dirs[0] / "README.md").read_text()

    in_process("models", "promote", "toy-sentiment", "--reason", "first champion", "--by", "ana", cwd=tmp_path)
    # Second run: compared against the champion now, on the same split (so on every test row); version 2.
    out = in_process("run", "config.yaml", "--set", "training.learning_rate=4e-3", cwd=tmp_path).stdout
    assert "registered toy-sentiment version 2" in out
    (second,) = [p for p in (tmp_path / ".tunesmith/runs/toy-sentiment").iterdir() if p != run_dirs[0]]
    metrics = json.loads((second / "metrics.json").read_text())
    assert metrics["champion_status"] == "compared" and metrics["vs_champion_excluded"] == 0
    in_process("models", "promote", "toy-sentiment", "--reason", "beats v1", cwd=tmp_path)
    shown = json.loads(in_process("models", "show", "toy-sentiment", cwd=tmp_path).stdout)
    assert shown["aliases"]["champion"] in ("2", 2)
    tags = next(v for v in shown["versions"] if str(v["version"]) == "2")["tags"]  # the data gates travel along
    assert tags["data_card"].startswith("runs:/") and tags["data_card"].endswith("/data_card.json")
    assert "leakage=fail:0" in tags["data_checks"] and "pii=warn:" in tags["data_checks"]
    assert "Data checks" in (second / "report.html").read_text()
    assert "Missing option '--reason'" in in_process("models", "rollback", "toy-sentiment", cwd=tmp_path,
                                                     check_code=2).output  # an unexplained change is refused
    in_process("models", "rollback", "toy-sentiment", "--reason", "v2 [bold]regressed[/bold]", cwd=tmp_path)
    shown = json.loads(in_process("models", "show", "toy-sentiment", cwd=tmp_path).stdout)
    assert shown["aliases"]["champion"] in ("1", 1)
    history = in_process("models", "history", "toy-sentiment", cwd=tmp_path).stdout  # who, what, why, in order
    assert [a for a in ("promote", "rollback") if a in history] == ["promote", "rollback"]
    assert "ana" in history and "first champion" in history and "[bold]regressed[/bold]" in history
    # the champion is never deleted; v2 is, with who and why, and is never promoted again
    refused = in_process("models", "delete", "toy-sentiment", "--version", "1", "--reason", "x", cwd=tmp_path,
                         check_code=2)
    assert "is the champion" in refused.output
    in_process("models", "delete", "toy-sentiment", "--version", "2", "--reason", "leaked eval rows", cwd=tmp_path)
    assert "it was deleted" in in_process("models", "promote", "toy-sentiment", "--version", "2", "--reason", "x",
                                          cwd=tmp_path, check_code=2).output
    history = in_process("models", "history", "toy-sentiment", cwd=tmp_path).stdout
    assert "delete" in history and "leaked eval rows" in history
    listed = in_process("models", "list", cwd=tmp_path).stdout
    assert "toy-sentiment" in listed


def test_failed_gate_exits_nonzero_and_registers_nothing(tmp_path, tiny_model_dir):
    write_project(tmp_path, tiny_model_dir, ["macro_f1 >= 0.999", "uplift.macro_f1 >= 0.5"], rows=120)
    proc = in_process("run", "config.yaml", "--set", "training.epochs=1", cwd=tmp_path, check_code=1)
    assert "gate decision: FAILED" in proc.stdout and "not registered" in proc.stdout
    listed = in_process("models", "list", cwd=tmp_path).stdout
    assert "toy-sentiment" not in listed


def test_bad_inputs_give_one_clear_error(tmp_path, tiny_model_dir):
    cfg = write_project(tmp_path, tiny_model_dir, ["accuracy >= 0.5"])
    # A typo'd key: named with its path and a suggestion; exit 2, no traceback.
    proc = tunesmith("validate", cfg, "--set", "training.learing_rate=0.1", cwd=tmp_path, check_code=2)
    assert "training.learing_rate: unknown key (did you mean 'learning_rate'?)" in proc.stderr
    assert "Traceback" not in proc.stderr

    # A CSV without the label column: names the file and the config key.
    make_reviews(20).drop(columns=["label"]).to_csv(tmp_path / "nolabel.csv", index=False)
    proc = in_process("validate", cfg, "--set", "data.path=nolabel.csv", cwd=tmp_path, check_code=2)
    assert "nolabel.csv" in proc.stderr and "data.label_column" in proc.stderr and "Traceback" not in proc.stderr

    # A jsonl with a broken line under bad_rows: fail -> file:line.
    lines = [json.dumps(r) for r in make_reviews(30).to_dict("records")]
    lines[2] = '{"text": "broken'
    (tmp_path / "broken.jsonl").write_text("\n".join(lines) + "\n")
    proc = in_process("validate", cfg, "--set", "data.path=broken.jsonl", "--set", "data.bad_rows=fail",
                      cwd=tmp_path, check_code=2)
    assert "broken.jsonl:3" in proc.stderr and "Traceback" not in proc.stderr


def test_validate_config_only_and_init(tmp_path, tiny_model_dir):
    cfg = write_project(tmp_path, tiny_model_dir, ["accuracy >= 0.5"])
    out = tunesmith("validate", cfg, "--config-only", "--set", "training.epochs=7", cwd=tmp_path).stdout
    assert "epochs: 7" in out and "trust_remote_code: false" in out

    out = tunesmith("init", "reviews.csv", "-o", "starter.yaml", cwd=tmp_path).stdout
    assert "text column 'text', label column 'label'" in out
    out = tunesmith("validate", "starter.yaml", "--config-only", cwd=tmp_path).stdout
    assert "path: reviews.csv" in out and "label_column: label" in out


def test_evaluate_scores_a_trained_model_dir(tmp_path, tiny_model_dir):
    write_project(tmp_path, tiny_model_dir, ["accuracy >= 0.6"])
    in_process("train", "config.yaml", "--run-dir", "trained", cwd=tmp_path)
    assert json.loads((tmp_path / "trained/train_result.json").read_text())["method"] == "full"
    out = tunesmith("evaluate", "config.yaml", "--model", "trained/model", cwd=tmp_path).stdout
    assert "base vs tuned (test split)" in out and "gate decision: PASSED" in out
    proc = in_process("evaluate", "config.yaml", "--model", "trained/model", "--set", "gates=['accuracy >= 1.01']",
                      cwd=tmp_path, check_code=1)
    assert "FAIL" in proc.stdout


def test_cli_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, tiny_model_dir):
    import signal
    import time

    from safetensors.torch import load_file

    write_project(tmp_path, tiny_model_dir, ["accuracy >= 0.0"])
    common = ["--set", "training.eval_steps=4", "--set", "training.num_threads=1", "--set", "training.precision=fp32"]
    in_process("train", "config.yaml", "--run-dir", "straight", *common, cwd=tmp_path)

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "train", "config.yaml", *common], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / ".tunesmith/runs/toy-sentiment"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list(runs.glob("*/checkpoints/checkpoint-*/tunesmith-complete.json")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(runs.glob("*/model")), "the killed run must not have produced a final model"

    tunesmith("train", "config.yaml", "--resume", *common, cwd=tmp_path)
    (resumed,) = list(runs.glob("*/model"))
    a, b = load_file(str(tmp_path / "straight/model/model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)

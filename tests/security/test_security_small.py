"""#15 finding 10: a bad model name on the `models` commands is exit 2 and one line, never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tunesmith.cli import app


@pytest.mark.parametrize("verb", ["show", "promote", "rollback"])
@pytest.mark.parametrize("name", ["../x", "a/b", "name:1", "..", "x y"])
def test_bad_model_names_exit_2_in_one_line(tmp_path, verb, name):
    why = ["--reason", "test"] if verb != "show" else []  # promote and rollback always need a reason
    result = CliRunner().invoke(app, ["models", verb, name, *why, "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert f"model name {name!r}" in result.output and len(result.output.strip().splitlines()) <= 2
    assert not (tmp_path / "m.db").exists()  # refused before any store is opened


# #15 finding 11: special files, unbounded lines, empty run folders, runs left RUNNING by a dead process.

def _project(tmp_path, monkeypatch, data_path: str, tiny_model_dir: str, fmt: str = "auto"):
    import json

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = {"name": "toy", "data": {"path": data_path, "format": fmt, "checks": {"pii": {"presidio": "off"}}},
           "model": {"base": tiny_model_dir, "max_length": 32}}
    (tmp_path / "cfg.yaml").write_text(json.dumps(cfg))
    return tmp_path / "cfg.yaml"


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_special_files_are_refused_in_one_line_not_read(tmp_path, monkeypatch, tiny_model_dir, special):
    import os
    import resource
    import subprocess
    import sys

    if special == "fifo":
        os.mkfifo(tmp_path / "data.jsonl")  # no writer: opening it would block forever
        special = str(tmp_path / "data.jsonl")
    cfg = _project(tmp_path, monkeypatch, special, tiny_model_dir, fmt="jsonl")

    def capped():  # an endless read fails this test (MemoryError), never the machine running the suite
        resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))

    proc = subprocess.run([sys.executable, "-c", "from tunesmith.cli import app; app()", "validate", str(cfg)],
                          capture_output=True, text=True, timeout=120, preexec_fn=capped, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "not a regular file (a device, FIFO or socket)" in output and "Traceback" not in output
    runs = tmp_path / ".tunesmith" / "runs" / "toy"
    assert not runs.exists() or not list(runs.iterdir())


def test_an_over_long_jsonl_line_is_a_bad_row_and_never_read_whole(tmp_path):
    import json

    from tunesmith.data.load import load_table

    path = tmp_path / "rows.jsonl"
    with path.open("wb") as f:
        f.write(json.dumps({"text": "fine", "label": "a"}).encode() + b"\n")
        f.write(b'{"text": "' + b"x" * 50_000 + b'", "label": "b"}\n')  # over the 16 KiB limit set below
        f.write(json.dumps({"text": "also fine", "label": "b"}).encode() + b"\n")
        f.write(b"[" * 40_000)  # the last line, no newline, over the limit too
    table = load_table("data.path", path, max_line_bytes=16 * 1024)
    assert table.frame["text"].tolist() == ["fine", "also fine"]
    assert [(b.reason.value, b.source) for b in table.bad] == [("too_long_line", f"{path}:2"), ("too_long_line", f"{path}:4")]
    assert all(len(b.row["_line"]) <= 200 for b in table.bad)  # the quarantine keeps a prefix, not the line
    assert "data.max_line_bytes (16,384 bytes)" in table.bad[0].detail


def test_an_over_long_csv_field_names_the_line_and_the_key(tmp_path):
    from tunesmith.data.errors import DataError
    from tunesmith.data.load import load_table

    path = tmp_path / "rows.csv"
    path.write_text("text,label\nfine,a\n" + "y" * 5000 + ",b\n")
    with pytest.raises(DataError) as err:
        load_table("data.path", path, max_line_bytes=1024)
    assert f"{path}:3" in str(err.value) and "data.max_line_bytes" in str(err.value)


def test_a_failed_validate_or_run_leaves_no_run_folder(tmp_path, monkeypatch, tiny_model_dir):
    cfg = _project(tmp_path, monkeypatch, "missing.csv", tiny_model_dir)  # refused before anything is written
    for command in ("validate", "run"):
        result = CliRunner().invoke(app, [command, str(cfg)])
        assert result.exit_code == 2, result.output
        runs = tmp_path / ".tunesmith" / "runs" / "toy"
        assert not runs.exists() or not list(runs.iterdir()), (command, list(runs.iterdir()))


def test_a_run_whose_process_died_while_logging_is_marked_failed(tmp_path):
    import subprocess
    import sys

    from tunesmith.config import Config
    from tunesmith.registry.runs import log_run
    from tunesmith.registry.store import open_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    child = f"""
import os, signal
from tunesmith.registry.store import open_store, ensure_experiment
from tunesmith.registry.runs import _holder_tags
from tunesmith.config.serving import RegistryConfig
store = open_store(RegistryConfig(tracking_uri={uri!r}))
exp = ensure_experiment(store, "toy")
run = store.client.create_run(exp, run_name="killed", tags=_holder_tags())
print(run.info.run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies inside logging, as kill -9 or the OOM killer would
"""
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    killed = proc.stdout.split()[-1]
    cfg = Config.model_validate({"name": "toy", "data": {"path": "x.csv"}, "registry": {"tracking_uri": uri}})
    store = open_store(cfg.registry)
    assert store.client.get_run(killed).info.status == "RUNNING"
    (tmp_path / "run").mkdir()
    alive = store.client.create_run(store.client.get_experiment_by_name("toy").experiment_id, run_name="alive",
                                    tags={"tunesmith.host": __import__("socket").gethostname(),
                                          "tunesmith.pid": str(__import__("os").getpid())})
    new = log_run(cfg, run_dir=tmp_path / "run", metrics={"accuracy": 0.5}, store=store)
    assert store.client.get_run(killed).info.status == "FAILED"
    assert "stopped while logging" in store.client.get_run(killed).data.tags["tunesmith.failure"]
    assert store.client.get_run(alive.info.run_id).info.status == "RUNNING"  # its process (this one) is alive
    assert store.client.get_run(new).info.status == "FINISHED"

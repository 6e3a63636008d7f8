"""Every CLI command, given bad input, answers with exit 2 and a message, never a Python traceback; a model dir with
only pickle weights is refused (what, why, what to do) before anything is unpickled, by every command that loads one."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
import torch
from typer.testing import CliRunner

from tunesmith.cli import app

runner = CliRunner()


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def project(tmp_path, tiny_model_dir, monkeypatch):
    """A working dir with data, a good config, and a tiny BERT whose weights are a code-running pickle."""
    from tests.toy import make_reviews

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TUNESMITH_SERVE_TOKEN", raising=False)
    make_reviews(60, seed=1).to_csv(tmp_path / "reviews.csv", index=False)
    evil = tmp_path / "evil-model"
    shutil.copytree(tiny_model_dir, evil)
    for f in evil.glob("*.safetensors"):
        f.unlink()
    torch.save({"bert.embeddings.word_embeddings.weight": _Payload(tmp_path / "PWNED")}, evil / "pytorch_model.bin")
    cfg = {"name": "toy", "data": {"path": "reviews.csv", "checks": {"pii": {"presidio": "off"}}},
           "model": {"base": str(tiny_model_dir), "max_length": 32}}
    (tmp_path / "good.yaml").write_text(json.dumps(cfg))
    (tmp_path / "evil.yaml").write_text(json.dumps({**cfg, "model": {"base": str(evil), "max_length": 32}}))
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    (tmp_path / "unknown-key.yaml").write_text(json.dumps({**cfg, "modle": {}}))
    return tmp_path


BAD = {
    "validate a missing config": ["validate", "missing.yaml"],
    "validate broken YAML": ["validate", "broken.yaml"],
    "train an unknown key": ["train", "unknown-key.yaml"],
    "train a pickle-only base": ["train", "evil.yaml"],
    "run a pickle-only base": ["run", "evil.yaml"],
    "evaluate a missing model dir": ["evaluate", "good.yaml", "--model", "nowhere"],
    "evaluate a pickle-only model dir": ["evaluate", "good.yaml", "--model", "evil-model"],
    "distill from a pickle-only teacher": ["run", "good.yaml", "--set", "method.kind=distill",
                                            "--set", "method.distill.teacher=evil-model"],
    "tune without a search block": ["tune", "good.yaml"],
    "reproduce an unknown version": ["reproduce", "nope:1"],
    "init a missing file": ["init", "missing.csv"],
    "serve an unknown model": ["serve", "--model", "nope", "--config", "good.yaml"],
    "worker with a missing config": ["worker", "--config", "missing.yaml"],
    "monitor a window that is neither N nor a duration": ["monitor", "--config", "good.yaml", "--window", "banana"],
    "retrain an unknown model": ["retrain", "--config", "good.yaml", "--model", "nope"],
    "models show an unknown model": ["models", "show", "nope", "--config", "good.yaml"],
    "feedback import a missing file": ["feedback", "import", "missing.jsonl", "--config", "good.yaml"],
    "review export without a model": ["review", "export", "-o", "out.jsonl"],
    "api with a missing config": ["api", "--config", "missing.yaml"],
}


@pytest.mark.parametrize("args", list(BAD.values()), ids=list(BAD))
def test_bad_input_exits_2_with_a_message_and_no_traceback(project, args):
    result = runner.invoke(app, args)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in output
    assert result.exit_code == 2, f"exit {result.exit_code}: {output}\n{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an escaped exception
    assert output.strip(), "a refusal says why"
    assert not (project / "PWNED").exists()


def test_pickle_only_base_is_refused_in_one_line_naming_why_and_what_to_do(project):
    """The real CLI process: exit 2, one line (what, why, how), and the payload never ran."""
    import subprocess

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "run", "evil.yaml"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "pytorch_model.bin" in line]
    assert len(lines) == 1 and "model.base: refused" in lines[0]
    assert "can run code" in lines[0] and "safetensors" in lines[0] and "model.allow_pickle_weights: true" in lines[0]
    assert not (project / "PWNED").exists()
    assert not list((project / ".tunesmith").glob("runs/toy/*/data_card.json"))  # refused before the data checks


def test_the_opt_in_loads_plain_tensor_pickles_and_still_refuses_code(project, tiny_model_dir):
    """allow_pickle_weights lets a plain tensor pickle load (torch's weights_only loader); a code-running one is
    still refused and nothing runs."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    from tunesmith.hub import UnsafeWeights, loading

    with pytest.raises(UnsafeWeights, match="objects other than tensors"):
        with loading(str(project / "evil-model"), allow_pickle=True):
            AutoModel.from_pretrained(str(project / "evil-model"))
    assert not (project / "PWNED").exists()

    plain = project / "plain-pickle"
    shutil.copytree(project / "evil-model", plain)
    state = {k: v for f in sorted(os.scandir(tiny_model_dir), key=lambda e: e.name) if f.name.endswith(".safetensors")
             for k, v in load_file(f.path).items()}
    torch.save(state, plain / "pytorch_model.bin")
    with pytest.raises(UnsafeWeights, match="model.allow_pickle_weights: true"):
        with loading(str(plain)):
            pass
    with loading(str(plain), allow_pickle=True):
        model = AutoModel.from_pretrained(str(plain))
    assert torch.equal(model.state_dict()["embeddings.word_embeddings.weight"],
                       state["embeddings.word_embeddings.weight"])

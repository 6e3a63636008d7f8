"""2-process DDP on CPU (gloo, launched by torchrun through the CLI) against single-process training with the
same global batch: the same loss curve, and a complete LoRA adapter that reloads to the merged model's outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from tests.toy import make_reviews
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from tunesmith.config import load_config
from tunesmith.data import prepare_data
from tunesmith.training import train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    """A tiny BERT without dropout (so both runs draw no random masks) and a project with explicit splits."""
    root = tmp_path_factory.mktemp("ddp")
    model_dir = root / "tiny-no-dropout"
    shutil.copytree(tiny_model_dir, model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(model_dir)
    df = make_reviews(240, seed=3)
    for name, part in (("train", df[:160]), ("eval", df[160:200]), ("test", df[200:])):
        part.to_csv(root / f"{name}.csv", index=False)
    cfg = {
        "name": "toy-ddp",
        "data": {"train": "train.csv", "eval": "eval.csv", "test": "test.csv", "labels": ["neg", "pos"],
                 "checks": {"label_issues": {"enabled": False}, "leakage": {"policy": "warn"}}},
        "model": {"base": str(model_dir), "max_length": 32},
        "method": {"kind": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "training": {"epochs": 2, "batch_size": 16, "learning_rate": 3e-2, "eval_steps": 5, "num_threads": 1,
                     "precision": "fp32", "early_stopping_patience": None},
    }
    (root / "config.yaml").write_text(json.dumps(cfg))
    return root


def _losses(history: list[dict], key: str) -> dict[int, float]:
    return {row["step"]: row[key] for row in history if key in row}


def test_two_process_ddp_matches_single_process_and_saves_a_complete_adapter(project):
    single = train(*_single_inputs(project), project / "single")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "train", "config.yaml", "--launcher", "torchrun", "--nproc", "2",
         "--run-dir", str(project / "ddp"), "--set", "training.batch_size=8"],  # 2 x 8 = the single run's 16
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    ddp = json.loads((project / "ddp/log_history.json").read_text())

    single_train, ddp_train = _losses(single.log_history, "loss"), _losses(ddp, "loss")
    assert len(ddp_train) >= 5 and ddp_train.keys() == single_train.keys()
    for step, loss in single_train.items():
        assert ddp_train[step] == pytest.approx(loss, rel=1e-3, abs=1e-4), f"train loss at step {step}"
    single_eval, ddp_eval = _losses(single.log_history, "eval_loss"), _losses(ddp, "eval_loss")
    assert ddp_eval.keys() == single_eval.keys() == {5, 10, 15, 20}
    for step, loss in single_eval.items():
        assert ddp_eval[step] == pytest.approx(loss, rel=1e-3, abs=1e-4), f"eval loss at step {step}"

    # The adapter rank 0 saved is complete: LoRA matrices and the trained head, and it reproduces the merged model.
    adapter = project / "ddp/adapter"
    tensors = load_file(adapter / "adapter_model.safetensors")
    assert any("lora_A" in k for k in tensors) and any("lora_B" in k for k in tensors)
    assert any("classifier" in k for k in tensors) and all(t.numel() > 0 for t in tensors.values())
    assert all(t.abs().sum() > 0 for k, t in tensors.items() if "lora_B" in k)  # B starts at zero: it trained
    from peft import PeftModel

    base = AutoModelForSequenceClassification.from_pretrained(project / "tiny-no-dropout", num_labels=2)
    reloaded = PeftModel.from_pretrained(base, adapter).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(project / "ddp/model").eval()
    single_model = AutoModelForSequenceClassification.from_pretrained(single.model_dir).eval()
    tok = AutoTokenizer.from_pretrained(project / "ddp/model")
    batch = tok(make_reviews(16, seed=99)["text"].tolist(), padding=True, return_tensors="pt")
    with torch.no_grad():
        out_merged = merged(**batch).logits
        torch.testing.assert_close(reloaded(**batch).logits, out_merged, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(single_model(**batch).logits, out_merged, atol=1e-3, rtol=1e-3)
    assert not (project / "ddp/checkpoints").exists() or not any((project / "ddp/checkpoints").iterdir())


def _single_inputs(project):
    cfg = load_config(project / "config.yaml")
    return cfg, prepare_data(cfg, None)

"""A run killed with SIGKILL resumes from its last complete checkpoint and ends bit-identical to an unkilled run."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.training.conftest import InterruptAfterSave, Interrupted, make_config

from tunesmith.training import find_last_complete_checkpoint, train
from tunesmith.training.checkpoints import MARKER

STEPS = 40  # 4 epochs x 10 steps, a committed checkpoint every 5 steps

# The child trains with a short sleep per step so the parent can kill it mid-run. With `mid-save:N` it
# SIGKILLs itself inside Trainer._save_checkpoint at step N: weights and optimizer written, the rest not.
CHILD = """
import json, os, signal, sys, time
from types import SimpleNamespace
import pandas as pd
import torch
from transformers import Trainer, TrainerCallback
from tunesmith.config import Config
from tunesmith.training import train

cfg_json, data_dir, run_dir, mode = sys.argv[1:5]
torch.set_num_threads(1)
frames = {s: pd.read_json(os.path.join(data_dir, s + ".json")) for s in ("train", "eval", "test")}
bundle = SimpleNamespace(**frames, labels=["neg", "pos"], fingerprint="test")

class Slow(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(0.12)

if mode.startswith("mid-save:"):
    kill_at = int(mode.split(":")[1])
    save_rng = Trainer._save_rng_state
    def save_rng_then_die(self, output_dir):
        if self.state.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return save_rng(self, output_dir)
    Trainer._save_rng_state = save_rng_then_die

train(Config.model_validate_json(cfg_json), bundle, run_dir, callbacks=[Slow()])
"""


def _run_child(cfg, bundle, run_dir: Path, tmp_path: Path, mode: str) -> subprocess.Popen:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    for split in ("train", "eval", "test"):
        getattr(bundle, split).reset_index(drop=True).to_json(data_dir / f"{split}.json")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = [sys.executable, "-c", CHILD, cfg.model_dump_json(), str(data_dir), str(run_dir), mode]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_after_first_checkpoint(proc: subprocess.Popen, checkpoints: Path, min_step: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        last = find_last_complete_checkpoint(checkpoints)
        if last is not None and int(last.name.split("-")[1]) >= min_step:
            time.sleep(random.uniform(0, 0.6))  # anywhere: mid-step, mid-eval or mid-save
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.02)
    raise AssertionError(f"child finished or stalled before it could be killed: rc={proc.poll()} {proc.stderr.read()[-2000:]}")


def _plant_debris(checkpoints: Path) -> None:
    """What a crash can leave besides: a copied checkpoint without its marker and a stray temp dir."""
    last = find_last_complete_checkpoint(checkpoints)
    fake = checkpoints / "checkpoint-995"
    shutil.copytree(last, fake)
    (fake / MARKER).unlink()
    (fake / "model.safetensors").write_bytes(b"truncated")
    (checkpoints / "tmp-checkpoint-999").mkdir()


def _assert_same_weights(a: Path, b: Path) -> None:
    name = "adapter_model.safetensors" if (a / "adapter_model.safetensors").exists() else "model.safetensors"
    wa, wb = load_file(str(a / name)), load_file(str(b / name))
    assert wa.keys() == wb.keys()
    diff = {k: (wa[k] - wb[k]).abs().max().item() for k in wa if not torch.equal(wa[k], wb[k])}
    assert not diff, f"{len(diff)} tensors differ after resume, e.g. (max abs diff): {dict(list(diff.items())[:3])}"


@pytest.mark.parametrize("mode", ["random", "mid-save:20"])
def test_sigkilled_run_resumes_to_identical_weights(mode, tiny_model_dir, bundle, tmp_path):
    cfg = make_config(tiny_model_dir, "full", epochs=4, max_steps=STEPS, eval_steps=5, save_total_limit=2)
    run = tmp_path / "killed"
    proc = _run_child(cfg, bundle, run, tmp_path, mode)
    if mode == "random":
        _kill_after_first_checkpoint(proc, run / "checkpoints", min_step=15)
    else:
        proc.wait(timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:]
    assert not (run / "model").exists()
    resumed_from = find_last_complete_checkpoint(run / "checkpoints")
    assert resumed_from is not None and int(resumed_from.name.split("-")[1]) < STEPS
    if mode != "random":
        assert resumed_from.name == "checkpoint-15"  # checkpoint-20 was half written: ignored
        assert (run / "checkpoints" / "checkpoint-20").is_dir()
    _plant_debris(run / "checkpoints")

    resumed = train(cfg, bundle, run, resume=True)
    reference = train(cfg, bundle, tmp_path / "reference")

    ckpt = f"checkpoints/checkpoint-{STEPS}"
    _assert_same_weights(run / ckpt, tmp_path / "reference" / ckpt)  # the last step, not only the best
    _assert_same_weights(resumed.model_dir, reference.model_dir)
    assert resumed.best_metric == reference.best_metric
    assert not (run / "checkpoints" / "checkpoint-995").exists() and not (run / "checkpoints" / "tmp-checkpoint-999").exists()
    ref_evals = {h["step"]: h["eval_loss"] for h in reference.log_history if "eval_loss" in h}
    for h in resumed.log_history:
        if "eval_loss" in h:
            assert h["eval_loss"] == ref_evals[h["step"]]


@pytest.mark.parametrize("method", ["lora", "freeze"])
def test_resume_is_exact_for_partial_methods(method, tiny_model_dir, bundle, tmp_path):
    cfg = make_config(tiny_model_dir, method, max_steps=15, eval_steps=5)
    with pytest.raises(Interrupted):
        train(cfg, bundle, tmp_path / "run", callbacks=[InterruptAfterSave(10)])
    assert find_last_complete_checkpoint(tmp_path / "run" / "checkpoints").name == "checkpoint-10"
    resumed = train(cfg, bundle, tmp_path / "run", resume=True)
    reference = train(cfg, bundle, tmp_path / "reference")
    _assert_same_weights(resumed.model_dir, reference.model_dir)
    last = "checkpoints/checkpoint-15"  # for LoRA: the adapter + head weights at the last step
    _assert_same_weights(tmp_path / "run" / last, tmp_path / "reference" / last)

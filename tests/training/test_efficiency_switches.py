"""training.gradient_checkpointing and training.torch_compile reach the Trainer, and checkpointing changes memory,
not the math: the same losses step for step."""

from __future__ import annotations

import pytest
from tests.training.conftest import make_bundle, make_config
from transformers import TrainerCallback

from tunesmith.config import ConfigError
from tunesmith.training import train
from tunesmith.training.trainer import training_arguments, use_compile


def test_switches_reach_training_arguments(tiny_model_dir, tmp_path):
    cfg = make_config(tiny_model_dir, "full", gradient_checkpointing=True, torch_compile="on")
    args = training_arguments(cfg, str(tmp_path), "fp32", n_train=160, has_eval=True)
    assert args.activation_checkpointing is True and args.activation_checkpointing_kwargs == {"use_reentrant": False}
    assert args.torch_compile is True
    off = training_arguments(make_config(tiny_model_dir, "full"), str(tmp_path), "fp32", n_train=160, has_eval=True)
    assert off.activation_checkpointing is False and off.torch_compile is False  # auto is off on CPU
    assert use_compile("auto", 10_000) is False or use_compile("auto", 10) is False
    assert use_compile("on", 1) is True and use_compile("off", 10_000) is False
    with pytest.raises(ConfigError, match="training.torch_compile"):
        make_config(tiny_model_dir, "full", torch_compile="sometimes")


class Checkpointing(TrainerCallback):
    """Records whether the model being trained recomputes its activations."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.on = model.is_activation_checkpointing


@pytest.mark.parametrize("switch", [True, False])
def test_the_model_really_checkpoints(tiny_model_dir, tmp_path, switch):
    seen = Checkpointing()
    train(make_config(tiny_model_dir, "full", max_steps=2, gradient_checkpointing=switch), make_bundle(),
          tmp_path / "run", callbacks=[seen])
    assert seen.on is switch


@pytest.mark.parametrize("method", ["full", "lora"])
def test_checkpointing_keeps_the_losses(tiny_model_dir, tmp_path, method):
    bundle = make_bundle()
    losses = {}
    for ckpt in (False, True):
        cfg = make_config(tiny_model_dir, method, max_steps=8, gradient_checkpointing=ckpt)
        result = train(cfg, bundle, tmp_path / f"{method}-{ckpt}")
        losses[ckpt] = [h["loss"] for h in result.log_history if "loss" in h]
    assert len(losses[True]) == len(losses[False]) >= 4
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_tokens_seen_are_logged(tiny_model_dir, tmp_path):
    result = train(make_config(tiny_model_dir, "full", max_steps=4), make_bundle(), tmp_path / "run")
    seen = [h["num_input_tokens_seen"] for h in result.log_history if "num_input_tokens_seen" in h]
    assert seen and seen == sorted(seen) and seen[-1] > 4 * 16  # non-padding tokens of 4 batches of 16 rows


def test_unquoted_yaml_on_and_off_mean_the_words(tmp_path):
    from tunesmith.config import load_config

    for word in ("on", "off", "auto"):
        path = tmp_path / f"{word}.yaml"
        path.write_text(f"name: x\ndata: {{path: a.csv}}\ntraining:\n  torch_compile: {word}\n")
        assert load_config(path).training.torch_compile == word

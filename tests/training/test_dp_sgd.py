"""training.privacy: DP-SGD through Opacus trains the encoder families (full and LoRA), spends at most the target
epsilon, and records it in TrainResult, model/tunesmith.json, the lineage, the gates and the model card."""

from __future__ import annotations

import json
import math

import pytest
import torch
from opacus.data_loader import DPDataLoader
from opacus.optimizers import DPOptimizer
from tests.toy_multilabel import make_multilabel
from tests.training.conftest import FakeBundle, make_config
from transformers import TrainerCallback

from tunesmith.config import ConfigError, DPConfig, GatesConfig, config_from_dict
from tunesmith.evaluation.card import _dp_line
from tunesmith.evaluation.gates import gate, is_valid_gate_metric
from tunesmith.training import TrainingError, train
from tunesmith.training.privacy import check_delta, lineage_tags, privacy_metrics, target_delta
from tunesmith.tuning.study import TuneError, tune

PRIVACY = {"epsilon": 4.0, "max_grad_norm": 0.5}


class DPProbe(TrainerCallback):
    """What each optimizer step sees: Opacus' optimizer and loader, per-example gradients, the Trainer's clip off."""

    def __init__(self):
        self.steps, self.batch_sizes, self.before, self.after = 0, [], {}, {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.trainable = {n for n, p in model.named_parameters() if p.requires_grad}

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kw):
        assert isinstance(optimizer.optimizer, DPOptimizer) and isinstance(train_dataloader, DPDataLoader)
        assert args.max_grad_norm == 0
        samples = {p.grad_sample.shape[0] for p in model.parameters() if p.requires_grad}
        assert len(samples) == 1, "every trainable parameter has one gradient per example"
        self.batch_sizes.append(samples.pop())
        self.steps += 1

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_dp_sgd_trains_within_the_target_epsilon_and_records_it(method, tiny_model_dir, bundle, tmp_path):
    probe = DPProbe()
    cfg = make_config(tiny_model_dir, method, max_steps=6, eval_steps=3, privacy=PRIVACY)
    result = train(cfg, bundle, tmp_path / "run", callbacks=[probe])

    rec = result.privacy
    assert 0 < rec["epsilon"] <= PRIVACY["epsilon"] and math.isfinite(rec["epsilon"])
    assert rec["epsilon"] > 0.9 * PRIVACY["epsilon"]  # the noise is calibrated to spend the budget, not far less
    assert rec["steps"] == rec["planned_steps"] == probe.steps == 6
    assert rec["delta"] == pytest.approx(1 / (10 * len(bundle.train))) and rec["max_grad_norm"] == 0.5
    assert rec["noise_multiplier"] > 0.3 and rec["sample_rate"] == pytest.approx(0.1)
    assert len(set(probe.batch_sizes)) > 1, "Poisson sampling gives batches of varying size"
    card = json.loads((result.model_dir / "tunesmith.json").read_text())
    assert card["privacy"]["epsilon"] == rec["epsilon"] and card["privacy"]["accountant"] == "prv"
    for name in probe.trainable:  # noise and clipped gradients move every trained weight ...
        assert not torch.equal(probe.before[name], probe.after[name]), name
    if method == "full":  # ... but the position embeddings, shared across the batch, stay frozen
        assert rec["frozen"] == ["bert.embeddings.position_embeddings.weight"]
        assert not any("position_embeddings" in n for n in probe.trainable)
    else:
        assert any("lora_A" in n for n in probe.trainable) and result.trainable_params < result.total_params / 5

    flat = privacy_metrics(rec)
    assert is_valid_gate_metric("privacy.epsilon") and is_valid_gate_metric("privacy.delta")
    assert gate(flat, GatesConfig(rules=["privacy.epsilon <= 4"]), primary_metric="macro_f1").passed
    assert not gate(flat, GatesConfig(rules=["privacy.epsilon <= 1"]), primary_metric="macro_f1").passed
    tags = lineage_tags(rec)
    assert float(tags["privacy.epsilon"]) == pytest.approx(rec["epsilon"], rel=1e-3)
    assert "DP-SGD" in _dp_line(tags) and "not measured" in _dp_line({})


def test_dp_sgd_trains_multi_label(tiny_model_dir, tmp_path):
    df = make_multilabel(120, seed=2)
    df["labels"] = df["label"]  # the bundle keeps the raw column beside the parsed list
    labels = ["acting", "complaint", "praise"]
    ml = FakeBundle(train=df[:80], eval=df[80:100], test=df[100:], labels=labels)
    cfg = config_from_dict({**make_config(tiny_model_dir).model_dump(exclude={"task", "training"}), "task": "multi-label",
                            "training": {"max_steps": 4, "eval_steps": 2, "batch_size": 16, "learning_rate": 5e-3,
                                         "precision": "fp32", "num_threads": 1, "early_stopping_patience": None,
                                         "privacy": {**PRIVACY, "delta": 1e-4, "accountant": "rdp"}}})
    result = train(cfg, ml, tmp_path / "run")
    assert 0 < result.privacy["epsilon"] <= PRIVACY["epsilon"]
    assert result.privacy["delta"] == 1e-4 and result.privacy["accountant"] == "rdp"
    assert json.loads((result.model_dir / "tunesmith.json").read_text())["privacy"]["steps"] == 4


def test_unsupported_combinations_are_refused_with_the_key_path(tiny_model_dir, tmp_path):
    base = {"name": "toy", "data": {"path": "unused.jsonl"}, "model": {"base": tiny_model_dir},
            "training": {"privacy": PRIVACY}}
    cases = [({"task": "token-classification"}, r"training.privacy: DP-SGD supports classification, multi-label"),
             ({"task": "regression"}, r"not regression"),
             ({"method": {"kind": "distill", "distill": {"teacher": "t"}}}, r"method.kind: distill is not supported"),
             ({"training": {"privacy": PRIVACY, "grad_accum": 4}}, r"training.grad_accum: not supported .*training.batch_size"),
             ({"training": {"privacy": PRIVACY, "class_weights": True}}, r"training.class_weights: not supported"),
             ({"training": {"privacy": PRIVACY, "gradient_checkpointing": True}},
              r"training.gradient_checkpointing: not supported"),
             ({"training": {"privacy": {"epsilon": 0}}}, r"training.privacy.epsilon"),
             ({"training": {"privacy": {"epsilon": 8, "delta": 1.5}}}, r"training.privacy.delta")]
    for extra, message in cases:
        with pytest.raises(ConfigError, match=message):
            config_from_dict({**base, **extra})

    with pytest.raises(TrainingError, match=r"training.privacy.delta: 0.01 is not below 1 / 160 train rows"):
        check_delta(DPConfig(epsilon=8, delta=0.01), 160)
    assert target_delta(DPConfig(epsilon=8), 500) == pytest.approx(2e-4)
    cfg = config_from_dict({**base, "search": {"space": {"training.learning_rate": {"low": 1e-4, "high": 1e-3}}}})
    with pytest.raises(TuneError, match="training.privacy: every trial would spend the budget again"):
        tune(cfg)


def test_a_weight_without_per_example_gradients_is_a_clear_error(tiny_model_dir, bundle, tmp_path, monkeypatch):
    # Left trainable, BERT's position embeddings (one position_ids row broadcast over the batch) have none.
    monkeypatch.setattr("tunesmith.training.run.freeze_shared_positions", lambda model: [])
    cfg = make_config(tiny_model_dir, "full", max_steps=2, eval_steps=2, privacy=PRIVACY)
    with pytest.raises(TrainingError, match=r"training.privacy: this model has weights without a per-example gradient"):
        train(cfg, bundle, tmp_path / "run")

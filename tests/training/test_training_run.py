"""train(): learns the toy task, is reproducible, saves a plain safetensors model dir (LoRA merged)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tests.training.conftest import make_config
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback

from tunesmith.config import ConfigError
from tunesmith.families.classification.model import predict_logits
from tunesmith.training import TrainingError, resolve_precision, train


def _weights(model_dir) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def test_full_finetune_learns_the_toy_task(tiny_model_dir, bundle, tmp_path):
    result = train(make_config(tiny_model_dir, "full", epochs=3), bundle, tmp_path / "run")

    assert result.best_metric is not None and result.best_metric >= 0.85  # chance is 0.5
    model = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    tok = AutoTokenizer.from_pretrained(result.model_dir)
    preds = predict_logits(model, tok, bundle.test["text"].tolist(), max_length=32).argmax(1)
    accuracy = np.mean([model.config.id2label[int(p)] == y for p, y in zip(preds, bundle.test["label"], strict=True)])
    assert accuracy >= 0.85
    assert model.config.label2id == {"neg": 0, "pos": 1}
    assert any("eval_macro_f1" in h for h in result.log_history) and any("loss" in h for h in result.log_history)
    assert result.train_examples_per_s > 0 and result.precision == "fp32"
    json.dumps(result.to_dict())  # plain data, ready for metrics.json / MLflow


def test_same_seed_gives_identical_weights(tiny_model_dir, bundle, tmp_path):
    cfg = make_config(tiny_model_dir, "full", max_steps=12)  # dropout on, length-grouped shuffled batches
    a = _weights(train(cfg, bundle, tmp_path / "a").model_dir)
    b = _weights(train(cfg, bundle, tmp_path / "b").model_dir)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _weights(train(cfg.model_copy(update={"seed": 7}), bundle, tmp_path / "c").model_dir)
    assert not all(torch.equal(a[k], c[k]) for k in a)


class PeftLogits(TrainerCallback):
    """Logits of the trained PEFT model (best checkpoint loaded), before train() merges it."""

    def __init__(self, texts):
        self.texts = texts

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        self.logits = predict_logits(model, processing_class, self.texts, max_length=32)


def test_lora_merged_model_matches_the_adapter_model(tiny_model_dir, bundle, tmp_path):
    texts = bundle.test["text"].tolist()
    probe = PeftLogits(texts)
    result = train(make_config(tiny_model_dir, "lora", max_steps=10), bundle, tmp_path / "run", callbacks=[probe])

    merged = AutoModelForSequenceClassification.from_pretrained(result.model_dir)  # a plain model: no peft needed
    assert not any("lora" in name for name, _ in merged.named_parameters())
    logits = predict_logits(merged, AutoTokenizer.from_pretrained(result.model_dir), texts, max_length=32)
    np.testing.assert_allclose(logits, probe.logits, atol=1e-5, rtol=0)
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


def test_saved_dirs_hold_safetensors_only(tiny_model_dir, bundle, tmp_path):
    train(make_config(tiny_model_dir, "lora", max_steps=4), bundle, tmp_path / "run")
    run = tmp_path / "run"
    for folder in (run / "model", run / "adapter"):
        names = {p.name for p in folder.iterdir()}
        assert any(n.endswith(".safetensors") for n in names), names
        assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl")) or n.startswith("pytorch_model") for n in names)
    assert {"config.json", "tokenizer.json"} <= {p.name for p in (run / "model").iterdir()}
    assert not [p for p in run.iterdir() if p.name.startswith((".tmp-", ".old-"))]  # atomic save left no temp dirs


def test_class_weights_train(tiny_model_dir, bundle, tmp_path):
    skewed = bundle.__class__(train=bundle.train[bundle.train["label"].eq("pos").cumsum() <= 20], eval=bundle.eval,
                              test=bundle.test)
    result = train(make_config(tiny_model_dir, "full", max_steps=5, class_weights=True), skewed, tmp_path / "run")
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert losses and all(np.isfinite(losses))


def test_errors_are_clear(tiny_model_dir, bundle, tmp_path):
    with pytest.raises(ConfigError, match="training.metric: Input should be 'macro_f1', 'accuracy'"):
        make_config(tiny_model_dir, metric="bleu", max_steps=2)  # caught when the config is read
    odd = bundle.__class__(train=bundle.train.assign(label="maybe"), eval=bundle.eval, test=bundle.test)
    with pytest.raises(TrainingError, match=r"train split has labels \['maybe'\]"):
        train(make_config(tiny_model_dir, max_steps=2), odd, tmp_path / "b")


def test_precision_resolution():
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("auto") in {"bf16", "fp32"}

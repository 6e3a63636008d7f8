"""Each method trains exactly the parameters it promises to, and nothing else moves."""

from __future__ import annotations

import pytest
import torch
from tests.training.conftest import make_config
from transformers import TrainerCallback

from tunesmith.config import MethodConfig
from tunesmith.families.classification.model import build_model
from tunesmith.training import MethodError, apply_method, train
from tunesmith.training.methods import encoder_layers, head_module_names


class ParamSnapshot(TrainerCallback):
    """Parameters and requires_grad at the start and at the end of training."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.trainable = {n for n, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters()}


def _trainable_ok(method: str, name: str) -> bool:
    if method == "full":
        return True
    if method == "head":
        return name.startswith("classifier.")
    if method == "freeze":  # embeddings and layer 0 frozen; layer 1, pooler and head train
        return not (name.startswith("bert.embeddings.") or name.startswith("bert.encoder.layer.0."))
    # lora: adapters and the (copied) head only; base weights, incl. the wrapped base layers, stay put
    return "lora_" in name or "modules_to_save" in name


@pytest.mark.parametrize("method", ["full", "lora", "freeze", "head"])
def test_method_trains_exactly_its_parameters(method, tiny_model_dir, bundle, tmp_path):
    snap = ParamSnapshot()
    cfg = make_config(tiny_model_dir, method, max_steps=6, eval_steps=3, weight_decay=0.0)
    result = train(cfg, bundle, tmp_path / "run", callbacks=[snap])

    assert snap.trainable, "no trainable parameters"
    assert {n for n in snap.before if _trainable_ok(method, n)} == snap.trainable
    for name, before in snap.before.items():
        if name in snap.trainable:
            assert not torch.equal(before, snap.after[name]), f"{method}: trainable {name} did not change"
        else:
            assert torch.equal(before, snap.after[name]), f"{method}: frozen {name} changed"
    assert result.trainable_params == sum(snap.before[n].numel() for n in snap.trainable)
    assert result.total_params == sum(p.numel() for p in snap.before.values())
    if method == "lora":
        assert any("lora_A" in n for n in snap.trainable) and any("lora_B" in n for n in snap.trainable)
        assert any("classifier" in n and "modules_to_save" in n for n in snap.trainable)
        assert result.trainable_params < result.total_params / 5


def test_structure_helpers_find_head_and_layers(tiny_model_dir):
    model = build_model(tiny_model_dir, ["a", "b"])
    assert head_module_names(model) == ["classifier"]
    assert len(encoder_layers(model)) == 2


def test_freeze_more_layers_than_the_model_has_is_an_error(tiny_model_dir):
    model = build_model(tiny_model_dir, ["a", "b"])
    with pytest.raises(MethodError, match=r"method.freeze.layers: 5 .* 2 layers"):
        apply_method(model, MethodConfig(kind="freeze", freeze={"layers": 5}))

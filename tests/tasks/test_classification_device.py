"""Prediction runs on the GPU when there is one: the model and every batch move there; CPU stays as it was."""

from types import SimpleNamespace

import pytest
import torch

from tunesmith.families.classification.model import load_tokenizer, predict_logits


class Recorder(torch.nn.Module):
    """A stand-in classifier that records where it was asked to move and where its inputs arrived."""

    def __init__(self, device_map=None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(num_labels=2)
        self.hf_device_map = device_map
        self.moved_to: list[torch.device] = []
        self.inputs_on: set[torch.device] = set()

    def to(self, device):  # record only: this machine may have no GPU to move to
        self.moved_to.append(torch.device(device))
        return self

    def forward(self, input_ids, attention_mask, **_):
        self.inputs_on.add(input_ids.device)
        return SimpleNamespace(logits=torch.zeros(len(input_ids), 2))


@pytest.mark.parametrize("cuda", [True, False])
def test_model_moves_to_the_picked_device(tiny_model_dir, monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    model = Recorder()
    out = predict_logits(model, load_tokenizer(tiny_model_dir), ["great film", "dull plot"], max_length=16)
    assert out.shape == (2, 2) and model.moved_to == [torch.device("cuda" if cuda else "cpu")]
    assert model.inputs_on == {torch.device("cpu")}  # batches follow the model's parameters (not moved here)


def test_a_model_placed_by_accelerate_is_left_where_it_is(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = Recorder(device_map={"": 0})
    predict_logits(model, load_tokenizer(tiny_model_dir), ["great film"], max_length=16)
    assert model.moved_to == []

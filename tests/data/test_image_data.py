"""Image rows through the data stage: a planted-defect image set whose every defect is caught and counted (corrupt,
truncated, oversized, missing, unknown label, converted modes, exact and near duplicates, exact and near leaks,
EXIF GPS and camera serial), under the default policies (leakage fails) and under drop / redact."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from tests.toy_images import texture_tiles

from tunesmith.config import config_from_dict
from tunesmith.data import prepare_data
from tunesmith.data.checks import DataChecksFailed
from tunesmith.data.images import EXIF, IMAGE, MODE, exif_findings


def _save(folder, name: str, image: Image.Image, **kw) -> str:
    image.save(folder / name, **kw)
    return name


def _gps_exif(serial: bool = False) -> Image.Exif:
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 2.0)})
    if serial:
        exif.get_ifd(0x8769)[0xA431] = "SN-1234567"
    return exif


def _planted(folder):
    """train.csv and test.csv with clean texture tiles and one of each planted defect; returns the expected counts."""
    tiles = texture_tiles(30, seed=3)
    img = {n: [Image.fromarray(t.astype(np.uint8)) for t in v] for n, v in tiles.items() if n != "gravel"}
    train, evals, test = [], [], []
    for label, images in img.items():
        for i, im in enumerate(images[:16]):
            train.append({"image": _save(folder, f"{label}{i}.png", im), "label": label})
        for i, im in enumerate(images[16:20]):
            evals.append({"image": _save(folder, f"{label}-eval{i}.png", im), "label": label})
        for i, im in enumerate(images[20:24]):
            test.append({"image": _save(folder, f"{label}-test{i}.png", im), "label": label})
    brick = img["brick"]
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    buf = io.BytesIO()
    Image.fromarray(np.tile(tiles["grass"][0], (3, 3, 1)).astype(np.uint8)).save(buf, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    train += [
        {"image": "corrupt.png", "label": "brick"},  # line 34: unreadable_image
        {"image": "truncated.jpg", "label": "grass"},  # truncated_image
        {"image": _save(folder, "huge.png", brick[0].resize((128, 128))), "label": "brick"},  # over image.max_pixels
        {"image": "nowhere.png", "label": "brick"},  # missing_image
        {"image": _save(folder, "odd.png", brick[1]), "label": "marble"},  # unknown_label (data.labels)
        {"image": _save(folder, "gray.png", Image.merge("RGB", [brick[24].getchannel(0)] * 2 + [brick[25].getchannel(0)]).convert("L")), "label": "brick"},  # mode L, converted
        {"image": _save(folder, "copy.png", brick[3]), "label": "brick"},  # exact duplicate of brick3.png
        {"image": _save(folder, "near.jpg", brick[4].resize((48, 48)), quality=70), "label": "brick"},  # near dup
        {"image": _save(folder, "gps.jpg", brick[26], exif=_gps_exif(serial=True)), "label": "brick"},  # EXIF PII
    ]
    test += [
        {"image": _save(folder, "leak.png", brick[5]), "label": "brick"},  # the same pixels as train's brick5.png
        {"image": _save(folder, "leak-near.jpg", brick[6].resize((40, 40)), quality=75), "label": "brick"},
    ]
    pd.DataFrame(train).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(evals).to_csv(folder / "eval.csv", index=False)
    pd.DataFrame(test).to_csv(folder / "test.csv", index=False)


def _cfg(folder, **checks):
    return config_from_dict({
        "name": "planted", "task": "image-classification", "seed": 0, "output_dir": str(folder / "runs"),
        "data": {"train": str(folder / "train.csv"), "eval": str(folder / "eval.csv"), "test": str(folder / "test.csv"),
                 "labels": ["brick", "grass"], "checks": {"label_issues": {"enabled": False}, **checks, "pii": {"presidio": "off", **checks.get("pii", {})}}},
        "image": {"max_pixels": 100 * 100}})


def test_every_planted_image_defect_is_caught_and_counted(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    _planted(folder)
    assert exif_findings(Image.open(folder / "gps.jpg")) == ["GPS position", "body serial number"]

    with pytest.raises(DataChecksFailed) as failed:  # the defaults: leakage fails the run, the card is written
        prepare_data(_cfg(folder), tmp_path / "run-default")
    assert any("data.checks.leakage" in v and "perceptual hash" in v for v in failed.value.violations)
    assert any("data.checks.leakage" in v and "earlier split" in v for v in failed.value.violations)
    card = json.loads((tmp_path / "run-default" / "data_card.json").read_text())
    assert card["checks"]["leakage"]["status"] == "fail"

    run = tmp_path / "run"
    bundle = prepare_data(_cfg(folder, duplicates={"policy": "drop"}, leakage={"policy": "drop"},
                               pii={"policy": "redact"}), run)
    report = bundle.report
    assert report.quarantined_by_reason == {
        "unreadable_image": 1, "truncated_image": 1, "image_too_large": 1, "missing_image": 1, "unknown_label": 1,
        "duplicate": 1, "near_duplicate_image": 1, "leak_exact": 1, "leak_near_image": 1}, report.quarantined_by_reason
    quarantine = [json.loads(line) for line in (run / "quarantine.jsonl").read_text().splitlines()]
    assert {q["source"] for q in quarantine if q["reason"] == "unreadable_image"} == {f"{folder / 'train.csv'}:34"}
    checks = report.checks
    assert checks["duplicates"]["by_kind"]["near_duplicate_image"]["rows"] == 1
    assert checks["leakage"]["by_kind"]["leak_near_image"]["rows"] == 1
    assert checks["image_pii"]["rows"] == 1 and checks["image_pii"]["by_kind"] == {"GPS position": 1,
                                                                                   "body serial number": 1}
    assert checks["image_modes"]["converted_to_rgb"] == 1 and any("not RGB" in w for w in report.warnings)
    frames = pd.concat([bundle.train, bundle.eval, bundle.test])
    assert (frames[MODE] == "L").sum() == 1 and not frames[EXIF].astype(bool).any()
    redacted = [p for p in frames[IMAGE] if "images_redacted" in p]
    assert len(redacted) == 1 and exif_findings(Image.open(redacted[0])) == []  # the training copy has no EXIF
    assert exif_findings(Image.open(folder / "gps.jpg"))  # the source file is unchanged
    assert frames["text"].str.startswith("image:").all() and frames["text"].is_unique


def test_every_table_format_and_the_folder_layout_give_the_same_rows(tmp_path):
    from tunesmith.data.images import ImageSettings, check_image_rows, read_image_table

    tiles = texture_tiles(2, seed=0)
    rows = []
    for label in ("brick", "grass"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i, tile in enumerate(tiles[label]):
            Image.fromarray(tile.astype(np.uint8)).save(tmp_path / "imgs" / label / f"{i}.png")
            rows.append({"path": f"imgs/{label}/{i}.png", "label": label})
    Image.fromarray(tiles["gravel"][0].astype(np.uint8)).save(tmp_path / "imgs" / "stray.png")  # no class folder
    frame = pd.DataFrame(rows)
    frame.to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "rows.parquet")
    cfg = _cfg(tmp_path)
    settings = ImageSettings("path")
    digests = []
    for name in ("rows.jsonl", "rows.parquet", "imgs"):
        table = read_image_table("data.path", (tmp_path / name).resolve(), "auto")
        checked = check_image_rows(table, cfg.data, settings)
        assert list(checked.rows["label"]) == ["brick", "brick", "grass", "grass"], name
        digests.append(list(checked.rows["text"]))
    assert digests[0] == digests[1] == digests[2]
    [stray] = checked.bad  # the folder layout: an image outside the class folders is a bad row, not left out
    assert stray.reason.value == "missing_label" and "no class subfolder" in stray.detail


def test_a_carved_split_keeps_near_duplicate_images_together(tmp_path):
    tiles = texture_tiles(20, seed=6)
    rows = []
    for label in ("brick", "grass"):
        for i, tile in enumerate(tiles[label]):
            im = Image.fromarray(tile.astype(np.uint8))
            rows.append({"image": _save(tmp_path, f"{label}{i}.png", im), "label": label})
            if i < 3:  # a resized, re-encoded copy of six of the images
                rows.append({"image": _save(tmp_path, f"{label}{i}-copy.jpg", im.resize((44, 44)), quality=80),
                             "label": label})
    pd.DataFrame(rows).to_csv(tmp_path / "all.csv", index=False)
    cfg = config_from_dict({"name": "near", "task": "image-classification", "seed": 0, "data": {
        "path": str(tmp_path / "all.csv"), "split": {"eval": 0.25, "test": 0.25},
        "checks": {"pii": {"presidio": "off"}, "label_issues": {"enabled": False}}}})
    bundle = prepare_data(cfg, tmp_path / "run")  # leakage: fail (the default) finds nothing to fail on
    split_of = {Path(p).stem.removesuffix("-copy"): [] for f in (bundle.train, bundle.eval, bundle.test) for p in f[IMAGE]}
    for name, frame in (("train", bundle.train), ("eval", bundle.eval), ("test", bundle.test)):
        for p in frame[IMAGE]:
            split_of[Path(p).stem.removesuffix("-copy")].append(name)
    pairs = {k: v for k, v in split_of.items() if len(v) == 2}
    assert len(pairs) == 6 and all(a == b for a, b in pairs.values()), pairs
    assert {v[0] for v in pairs.values()} != {"train"}  # some pairs were carved into eval/test, together
    assert bundle.report.checks["duplicates"]["by_kind"]["near_duplicate_image"]["rows"] == 6

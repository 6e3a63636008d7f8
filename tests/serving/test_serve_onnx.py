"""serving.inference.backend=onnx: encoder models run on ONNX Runtime after matching fp32 on the probes, the export
is cached next to the model by fingerprint, and any export or verification failure falls back to torch."""

from __future__ import annotations

import json
import logging
import shutil

import httpx
import pytest
from tests.serving.serve_helpers import LiveServer, build_classifier, register, settings

from tunesmith.config import InferenceConfig
from tunesmith.families.classification.serve import predict as classify
from tunesmith.families.embedding.serve import predict as embed
from tunesmith.families.regression.serve import predict as score
from tunesmith.serving import create_app, load_served
from tunesmith.serving import onnx_backend as ob

TEXTS = ["great film", "dull boring plot with a clumsy script", "the actor was charming", "a"]
ONNX = InferenceConfig(backend="onnx")


@pytest.fixture()
def clf_dir(tmp_path, classifier_dirs):
    return shutil.copytree(classifier_dirs[0], tmp_path / "clf")  # the cache is written next to the model


@pytest.fixture(scope="module")
def regression_dir(tmp_path_factory, encoder_dir):
    path = build_classifier(tmp_path_factory.mktemp("reg"), 3, encoder_dir)
    config = json.loads((path / "config.json").read_text())
    config.update(id2label={"0": "score"}, label2id={"score": 0}, problem_type="regression")
    (path / "config.json").write_text(json.dumps(config))
    from transformers import BertForSequenceClassification

    BertForSequenceClassification.from_pretrained(path, ignore_mismatched_sizes=True).save_pretrained(path)  # 1 output
    return path


def test_onnx_matches_fp32_and_the_export_is_cached(clf_dir, monkeypatch):
    fp32 = load_served(clf_dir, name="clf", version=1)
    served = load_served(clf_dir, name="clf", version=1, options=ONNX)
    assert served.backend == "onnx" and isinstance(served.model, ob.OrtModel)
    cached = list((clf_dir / "onnx").glob("model-*.onnx"))
    assert [p.resolve() for p in cached] == [served.model.path.resolve()]
    want, got = classify(fp32, TEXTS), classify(served, TEXTS)
    assert [w["label"] for w in want] == [g["label"] for g in got]
    assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=1e-4)

    quantized = load_served(clf_dir, name="clf", version=1, options=InferenceConfig(backend="onnx", quantize="int8"))
    assert quantized.backend == "onnx-int8" and quantized.model.path.name.endswith("-int8.onnx")
    assert quantized.model.path.stat().st_size < served.model.path.stat().st_size  # int8 weights
    got = classify(quantized, TEXTS)
    assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=ONNX.tolerance)

    def no_export(served):
        raise AssertionError("exported again although a cached file matches")

    monkeypatch.setattr(ob, "export_onnx", no_export)
    again = load_served(clf_dir, name="clf", version=1, options=ONNX)
    assert again.backend == "onnx" and again.model.path == served.model.path
    # Changed weights change the fingerprint: a stale export is never used.
    config = json.loads((clf_dir / "config.json").read_text())
    (clf_dir / "config.json").write_text(json.dumps({**config, "initializer_range": 0.03}))
    changed = load_served(clf_dir, name="clf", version=1, options=ONNX)
    assert changed.backend == "fp32"  # no_export refused to export, so the server stays on torch


def test_onnx_embeddings_and_regression_match_fp32(encoder_dir, regression_dir, tmp_path):
    enc_dir = shutil.copytree(encoder_dir, tmp_path / "enc")
    fp32, served = (load_served(enc_dir, name="e", version=1, options=o) for o in (None, ONNX))
    assert served.backend == "onnx"
    for want, got in zip(embed(fp32, TEXTS), embed(served, TEXTS), strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    fp32, served = (load_served(regression_dir, name="r", version=1, options=o) for o in (None, ONNX))
    assert served.backend == "onnx"
    assert score(served, TEXTS) == pytest.approx(score(fp32, TEXTS), abs=1e-4)


def test_onnx_falls_back_to_torch_with_a_reason(clf_dir, chat_dir, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="tunesmith.serving")
    original = ob.OrtModel.__call__

    def drifting(self, **enc):  # an export whose outputs moved: verification must catch it
        out = original(self, **enc)
        out.logits[:, 0] += 5.0
        return out

    monkeypatch.setattr(ob.OrtModel, "__call__", drifting)
    served = load_served(clf_dir, name="clf", version=1, options=ONNX)
    assert served.backend == "fp32" and not isinstance(served.model, ob.OrtModel)
    assert "onnx inference not used" in caplog.text and "max deviation" in caplog.text
    monkeypatch.setattr(ob.OrtModel, "__call__", original)

    caplog.clear()
    monkeypatch.setattr(ob, "export_onnx", lambda served: (_ for _ in ()).throw(RuntimeError("unsupported op")))
    shutil.rmtree(clf_dir / "onnx")
    served = load_served(clf_dir, name="clf", version=1, options=ONNX)
    assert served.backend == "fp32" and "RuntimeError: unsupported op" in caplog.text

    caplog.clear()
    lm = load_served(chat_dir, name="chat", version=1, options=ONNX)
    assert lm.backend == "fp32" and "encoder models" in caplog.text


def test_server_exports_the_live_backend(store, tmp_path, clf_dir):
    register(store, tmp_path, "clf", clf_dir, champion=True)
    app = create_app("clf", settings=settings(inference={"backend": "onnx"}), store=store)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/v1/classify", json={"input": TEXTS})
        assert r.status_code == 200 and len(r.json()["results"]) == len(TEXTS)
        metrics = client.get("/metrics").text
        assert 'tunesmith_inference_backend{backend="onnx",model="clf",version="1"} 1.0' in metrics
        assert {m["backend"] for m in client.get("/v1/models").json()["data"] if m["model_version"]} == {"onnx"}

"""evaluation.privacy: canary exposure ("The Secret Sharer"), PII extraction from training prefixes, and the
membership-inference AUC, each failing its gate on a model that memorized and passing on one that did not."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from tests.model_dirs import classifier
from tests.toy import make_reviews
from tests.toy_chat import make_chats, write_jsonl

from tunesmith.config import ConfigError, GatesConfig, config_from_dict
from tunesmith.data import pii, prepare_data
from tunesmith.evaluation import gate, unknown_gate_metrics
from tunesmith.evaluation.card import model_card
from tunesmith.evaluation.privacy import (
    CANARIES_FILE,
    PrivacyReport,
    exposure,
    measure_privacy,
    membership,
    membership_auc,
)
from tunesmith.families import get
from tunesmith.pipeline import run
from tunesmith.training import train

EMAILS = ["jane.doe@example.org", "mark.smith@mail.com", "ops.team@corp.net", "anna.berg@post.nl"]
PRIVACY_GATES = ["privacy.max_canary_exposure <= 6", "privacy.pii_extraction_rate == 0"]


def test_exposure_is_exact_over_the_whole_space_and_extrapolated_from_a_sample():
    space = 1000
    first = exposure(0.5, np.arange(1.0, 1000.0), space, exhaustive=True)  # the most likely of all 1000
    assert first["rank"] == 1 and first["exposure"] == pytest.approx(math.log2(1000))
    middle = exposure(500.5, np.arange(1.0, 1000.0), space, exhaustive=True)
    assert middle["rank"] == 501 and middle["exposure"] == pytest.approx(math.log2(1000 / 501))
    sample = np.random.default_rng(0).normal(50.0, 5.0, 2000)
    far = exposure(20.0, sample, 10**9, exhaustive=False)  # 6 sigma below every sampled secret
    assert far["method"].startswith("extrapolated") and far["exposure_sampled"] == pytest.approx(math.log2(2001))
    assert 25 < far["exposure"] <= math.log2(10**9)  # past what 2000 samples can show, capped at log2|R|
    typical = exposure(50.0, sample, 10**9, exhaustive=False)
    assert typical["exposure"] == pytest.approx(1.0, abs=0.2)  # a secret like the others: about 1 bit


def test_membership_auc_and_its_bootstrap_ci():
    rng = np.random.default_rng(1)
    apart = membership_auc(rng.normal(0.1, 0.05, 60), rng.normal(1.0, 0.3, 60), samples=100)
    assert apart["auc"] > 0.99 and apart["ci_low"] > 0.95 and apart["rows"] == 60
    same = membership_auc(rng.normal(1.0, 0.3, 60), rng.normal(1.0, 0.3, 60), samples=100)
    assert same["ci_low"] < 0.5 < same["ci_high"] and same["ci_high"] - same["ci_low"] < 0.4


def _raw(tmp_path, base: str, **privacy) -> dict:
    return {"name": "leaky-chat", "task": "causal-lm", "seed": 3, "output_dir": str(tmp_path / "runs"),
            "data": {"train": "train.jsonl", "eval": "eval.jsonl", "test": "test.jsonl",
                     "checks": {"pii": {"presidio": "off"}, "duplicates": {"policy": "off"},
                                "leakage": {"policy": "warn"}}},
            "model": {"base": base, "max_length": 64}, "method": {"kind": "full"},
            "training": {"epochs": 30, "batch_size": 8, "learning_rate": 1e-2, "precision": "fp32", "num_threads": 1,
                         "early_stopping_patience": None, "warmup_ratio": 0.0, "weight_decay": 0.0,
                         "eval_steps": 1000},
            "chat": {"max_new_tokens": 8}, "evaluation": {"bootstrap": {"samples": 100}, "samples": 1,
                                                          "privacy": privacy},
            "gates": PRIVACY_GATES, "registry": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}}


def _pii_chats() -> list[dict]:
    """Each person's e-mail address in an answer, four times: what a model memorizes and repeats."""
    rows = [{"messages": [{"role": "user", "content": f"how can i reach {e.split('.')[0]}"},
                          {"role": "assistant", "content": f"{e.split('.')[0]} is at {e} please"}]} for e in EMAILS]
    return rows * 4


def test_planted_canaries_and_pii_fail_the_privacy_gates_and_the_clean_model_passes(tmp_path, tiny_chat_model_dir):
    chats = make_chats(36, seed=1)
    write_jsonl(tmp_path / "train.jsonl", chats[:24] + _pii_chats())
    write_jsonl(tmp_path / "eval.jsonl", chats[24:28])
    write_jsonl(tmp_path / "test.jsonl", chats[28:])
    raw = _raw(tmp_path, tiny_chat_model_dir, canaries={"count": 2, "repeats": 6, "digits": 4, "candidates": 1000},
               extraction={"max_prompts": 10})
    cfg = config_from_dict(raw, source=str(tmp_path / "config.yaml"))
    outcome = run(cfg)  # plants the canaries, trains, measures, gates, reports

    assert not outcome.passed and {r.rule for r in outcome.decision.failed} == set(PRIVACY_GATES)
    assert outcome.timings["privacy"] > 0
    record = json.loads((outcome.run_dir / CANARIES_FILE).read_text())
    assert len(record["secrets"]) == 2 and record["rows_added"] == 12
    for name in ("train.jsonl", "eval.jsonl", "test.jsonl"):  # the user's files never see a canary
        assert not any(s in (tmp_path / name).read_text() for s in record["texts"])
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    privacy = metrics["privacy"]
    assert privacy["canaries"]["max_exposure"] > 6 and privacy["extraction"]["rate"] > 0.5
    assert privacy["extraction"]["prompts"] == 4 and privacy["extraction"]["base_rate"] == 0
    assert privacy["not_measured"] == ["membership inference (train vs test)"]
    html = (outcome.run_dir / "report.html").read_text()
    assert "<h2>Privacy</h2>" in html and "Canaries" in html and pii.mask(EMAILS[0]) in html
    assert not any(e in html for e in EMAILS)  # masked, never the value
    card = (outcome.run_dir / "README.md").read_text()
    assert "### Privacy" in card and "Canary exposure" in card and "memorization and PII extraction" not in card

    # The same model trained without the planted rows, asked about the same secrets and the same PII values
    bundle = prepare_data(cfg, None)
    clean = bundle.train[~bundle.train["text"].str.contains("@")]
    assert len(clean) == 24
    result = train(cfg, dataclasses.replace(bundle, train=clean), tmp_path / "clean")
    report = measure_privacy(cfg, bundle, result.model_dir, get("causal-lm").privacy, base_dir=tiny_chat_model_dir,
                             canaries=record)
    flat = report.flat_metrics()
    assert flat["privacy.max_canary_exposure"] < 6 and flat["privacy.pii_extraction_rate"] == 0
    assert flat["privacy.pii_prompts"] == 4
    assert gate(flat, cfg.gates, primary_metric="loss").passed


def test_an_overfit_classifier_is_told_apart_from_unseen_rows_and_a_fresh_one_is_not(tmp_path, tiny_model_dir):
    rng = random.Random(0)
    rows = make_reviews(72, seed=3).assign(label=lambda f: [rng.choice(["neg", "pos"]) for _ in range(len(f))])
    rows["_source"] = [f"reviews.csv:{i + 2}" for i in range(len(rows))]  # random labels: only memory fits them

    @dataclasses.dataclass
    class Bundle:
        train: pd.DataFrame
        eval: pd.DataFrame
        test: pd.DataFrame
        labels: list
        fingerprint: str = "toy"

    bundle = Bundle(rows[:32], rows[32:40], rows[40:].reset_index(drop=True), ["neg", "pos"])
    cfg = config_from_dict({
        "name": "memo", "data": {"path": "unused.csv"}, "model": {"base": tiny_model_dir, "max_length": 32},
        "method": {"kind": "full"}, "evaluation": {"privacy": {"membership": True}, "bootstrap": {"samples": 200}},
        "training": {"epochs": 30, "batch_size": 8, "learning_rate": 3e-3, "precision": "fp32", "num_threads": 1,
                     "early_stopping_patience": None, "warmup_ratio": 0.0, "weight_decay": 0.0, "eval_steps": 1000,
                     "metric": "loss"},
        "gates": ["privacy.membership_auc <= 0.6"]})
    hooks = get("classification").privacy
    overfit = membership(cfg, bundle, train(cfg, bundle, tmp_path / "run").model_dir, hooks)
    fresh = membership(cfg, bundle, classifier(tmp_path / "fresh", tiny_model_dir), hooks)
    assert overfit["rows"] == 32 and overfit["train_loss"] < 0.1 < overfit["test_loss"]
    assert overfit["auc"] > 0.75 and overfit["ci_low"] > 0.6
    assert fresh["ci_low"] < 0.5 < fresh["ci_high"]
    decisions = [gate(PrivacyReport(membership=m).flat_metrics(), cfg.gates, primary_metric="loss").passed
                 for m in (overfit, fresh)]
    assert decisions == [False, True]


def test_privacy_options_a_family_cannot_measure_are_refused_with_the_key_path(tiny_model_dir):
    base = {"name": "x", "data": {"path": "d.csv"}, "model": {"base": tiny_model_dir}}
    with pytest.raises(ConfigError, match=r"evaluation\.privacy\.canaries: the classification family cannot measure "
                                          r"it \(measures membership\)"):
        config_from_dict({**base, "evaluation": {"privacy": {"canaries": {"count": 2}}}})
    with pytest.raises(ConfigError, match=r"evaluation\.privacy\.extraction: the embedding family cannot measure it "
                                          r"\(measures no privacy yet\)"):
        config_from_dict({**base, "task": "embedding", "evaluation": {"privacy": {"extraction": True}}})
    with pytest.raises(ConfigError, match=r"gates: privacy\.membership_auc is measured only with "
                                          r"evaluation\.privacy\.membership"):
        config_from_dict({**base, "gates": ["privacy.membership_auc <= 0.6"]})
    with pytest.raises(ConfigError, match=r"template.*\{secret\} exactly once"):
        config_from_dict({**base, "task": "causal-lm", "evaluation": {"privacy": {"canaries": {"template": "pin"}}}})
    with pytest.raises(ConfigError, match="name what to measure"):
        config_from_dict({**base, "evaluation": {"privacy": {}}})
    gates = GatesConfig.model_validate(["privacy.membership_auc <= 0.6", "privacy.max_exposure <= 1"])
    assert unknown_gate_metrics(gates) == ["privacy.max_exposure"]


def test_the_model_card_says_what_was_measured_and_what_was_not(tiny_model_dir):
    cfg = config_from_dict({"name": "x", "data": {"path": "d.csv"}, "model": {"base": tiny_model_dir},
                            "evaluation": {"privacy": {"membership": True}}})
    report = PrivacyReport(membership={"auc": 0.93, "ci_low": 0.9, "ci_high": 0.96, "rows": 40, "train_loss": 0.01,
                                       "test_loss": 2.0}, notes=["<script>x</script>"])

    def Eval(tuned, baseline, uplift):  # noqa: N802 - the report fields the card reads
        return SimpleNamespace(tuned=tuned, baseline=baseline, uplift=uplift, champion=None, bootstrap=None, notes=[])

    decision = gate({}, GatesConfig(), primary_metric="macro_f1")
    card = model_card(cfg, report=Eval({"accuracy": 0.9}, {"accuracy": 0.8}, {}), data={}, decision=decision,
                      lineage={}, privacy=report.to_dict())
    assert "ROC AUC 0.9300 [0.9000, 0.9600]" in card and "memorization and PII extraction" not in card
    assert "Not measured: canary exposure" in card and "PII extraction from training prefixes" in card
    without = model_card(cfg, report=Eval({"accuracy": 0.9}, {"accuracy": 0.8}, {}), data={}, decision=decision,
                         lineage={})
    assert "memorization and PII extraction" in without and "### Privacy" not in without
    html = report.html()
    assert "&lt;script&gt;" in html and "<script>" not in html and "0.930 [0.900, 0.960]" in html


def test_canaries_are_scored_on_the_tokens_training_sees(tiny_chat_model_dir):
    from transformers import AutoModelForCausalLM

    from tunesmith.families.causal_lm.chat_template import encode_conversation
    from tunesmith.families.causal_lm.model import example_losses, load_tokenizer
    from tunesmith.families.causal_lm.privacy import canary_row, encode_canaries, sequence_nll

    cfg = config_from_dict({"name": "x", "task": "causal-lm", "data": {"path": "d.jsonl"},
                            "model": {"base": tiny_chat_model_dir, "max_length": 64},
                            "evaluation": {"privacy": {"canaries": {"template": "my pin is {secret} ok"}}}})
    tokenizer = load_tokenizer(tiny_chat_model_dir)
    texts = ["my pin is 1 2 3 ok", "my pin is 98 7 ok", "my pin is  ok"]
    rows = [canary_row(t, cfg)["messages"] for t in texts]
    fast = encode_canaries(tokenizer, cfg, texts)  # rendered once, the texts put in its place
    assert fast == [encode_conversation(tokenizer, m, None, max_length=64) for m in rows]
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir)
    sums, _ = example_losses(model, tokenizer, [(m, None) for m in rows], max_length=64)
    np.testing.assert_allclose(sequence_nll(model, fast), sums, rtol=1e-4)  # batched and padded = one by one


def test_multi_label_and_regression_losses_per_row(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from tunesmith.families.multilabel.model import build_model as multilabel_model
    from tunesmith.families.multilabel.model import predict_proba
    from tunesmith.families.regression.model import build_model as regression_model
    from tunesmith.families.regression.model import predict

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    labels = ["acting", "praise"]
    frame = pd.DataFrame({"text": ["great actor", "a dull plot", "the film"], "labels": [["acting", "praise"], [], []],
                          "target": [4.0, 1.0, 2.5]})
    for name, model in (("ml", multilabel_model(tiny_model_dir, labels)), ("reg", regression_model(tiny_model_dir))):
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    raw = {"name": "x", "data": {"path": "d.csv"}, "model": {"base": tiny_model_dir, "max_length": 32},
           "evaluation": {"privacy": {"membership": True}}}
    ml = get("multi-label").privacy.row_losses(config_from_dict({**raw, "task": "multi-label"}), tmp_path / "ml",
                                               frame, labels)
    p = predict_proba(*_loaded(tmp_path / "ml"), frame["text"].tolist(), max_length=32)
    y = np.array([[1, 1], [0, 0], [0, 0]])
    np.testing.assert_allclose(ml, -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1), rtol=1e-5)
    reg = get("regression").privacy.row_losses(config_from_dict({**raw, "task": "regression"}), tmp_path / "reg",
                                               frame, [])
    np.testing.assert_allclose(reg, (predict(*_loaded(tmp_path / "reg"), frame["text"].tolist(), max_length=32)
                                     - frame["target"].to_numpy()) ** 2, rtol=1e-5)


def _loaded(path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    return AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)

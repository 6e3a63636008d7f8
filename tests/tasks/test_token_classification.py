"""Token classification end to end on a tiny BERT: `run` (data gates, training, entity metrics vs the word probe,
gates, report, registry), the exported dir in transformers' pipeline, character offsets, methods and the champion."""

from __future__ import annotations

import json
import os

import pytest
import torch
from tests.toy_tokens import make_tagged

from tunesmith.config import config_from_dict
from tunesmith.families.token_classification import model as task
from tunesmith.families.token_classification.rows import TAGS, TOKENS


def _raw(tmp, base, **over):
    raw = {"name": "tagger", "task": "token-classification", "seed": 0,
           "data": {"path": str(tmp / "t.jsonl"), "split": {"eval": 0.1, "test": 0.2}},
           "model": {"base": base, "max_length": 32},
           "training": {"epochs": 5, "batch_size": 16, "learning_rate": 5e-3, "early_stopping_patience": None},
           "evaluation": {"bootstrap": {"samples": 200}}, "gates": ["f1 >= 0.5"]}
    raw.update(over)
    return raw


@pytest.fixture(scope="module")
def tagged_run(tmp_path_factory, tiny_model_dir):
    from tunesmith.pipeline import run

    tmp = tmp_path_factory.mktemp("tagger")
    rows = make_tagged(160, seed=1).to_dict("records") + [{"tokens": ["dull", "film"], "tags": ["B-BAD"]}]
    (tmp / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = config_from_dict(_raw(tmp, tiny_model_dir, output_dir=str(tmp / "runs")))
    cwd = os.getcwd()
    os.chdir(tmp)  # the embedded registry (.tunesmith/) lives in the working dir
    try:
        outcome = run(cfg)
    finally:
        os.chdir(cwd)
    return cfg, outcome


def test_run_trains_scores_entities_against_the_probe_and_registers(tagged_run):
    cfg, outcome = tagged_run
    report = outcome.eval_report
    assert outcome.passed and outcome.registered_version is not None
    assert report.tuned["f1"] >= 0.5 and report.primary_metric == "f1", (report.tuned, report.baseline)
    assert set(report.tuned["per_type"]) == {"BAD", "GOOD"} and report.tuned["per_type"]["GOOD"]["support"] > 0
    flat = report.flat_metrics()
    assert {"uplift.f1", "uplift_ci_low.f1", "baseline.macro_f1", "recall"} <= set(flat)
    assert flat["uplift.f1"] == pytest.approx(report.tuned["f1"] - report.baseline["f1"])
    assert report.baseline_probe["method"].startswith("logistic regression per word on the frozen base")
    run_dir = outcome.run_dir
    html = (run_dir / "report.html").read_text()
    assert "Per entity type" in html and "word probe" in html and "seqeval strict" in html
    quarantine = (run_dir / "quarantine.jsonl").read_text().splitlines()
    assert len(quarantine) == 1 and "t.jsonl:161" in quarantine[0] and "tags_length" in quarantine[0]
    assert json.loads((run_dir / "metrics.json").read_text())["flat"]["f1"] == report.tuned["f1"]


def test_exported_model_loads_in_the_token_classification_pipeline_unchanged(tagged_run):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    _, outcome = tagged_run
    path = str(outcome.train_result.model_dir)
    pipe = pipeline("token-classification", model=path, aggregation_strategy="simple", device="cpu")
    model = AutoModelForTokenClassification.from_pretrained(path)
    assert model.config.id2label == dict(enumerate(outcome.eval_report.labels))
    texts = [" ".join(w) for w in make_tagged(6, seed=99)[TOKENS]]
    ours = task.extract(model, AutoTokenizer.from_pretrained(path), texts, max_length=32)
    for text, mine, theirs in zip(texts, ours, pipe(texts), strict=True):
        assert {(e["start"], e["end"], e["label"]) for e in mine} == {
            (e["start"], e["end"], e["entity_group"]) for e in theirs}, text
    assert any(ours)


def test_extract_gives_character_offsets_into_the_raw_text(tagged_run):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    path = str(tagged_run[1].train_result.model_dir)
    model, tok = AutoModelForTokenClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    texts = ["The film was great,  but the plot:dull!", "", "   "]
    out = task.extract(model, tok, texts, max_length=32)
    assert out[1] == [] and out[2] == []
    for e in out[0]:
        assert texts[0][e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1
    assert ("great", "GOOD") in {(e["text"], e["label"]) for e in out[0]}


def test_a_champion_is_compared_on_unseen_test_sentences(tagged_run):
    from tunesmith.data import prepare_data
    from tunesmith.evaluation import evaluate

    cfg, outcome = tagged_run
    cfg._source_path = None
    bundle = prepare_data(cfg)
    model_dir = outcome.train_result.model_dir
    report = evaluate(cfg, bundle, model_dir, champion_dir=model_dir)  # the same model as its own champion
    assert report.champion_status == "compared" and report.vs_champion_rows == len(bundle.test)
    assert report.vs_champion["f1"]["delta"] == 0 and report.vs_champion["f1"]["ci_low"] == 0


def test_labels_align_to_the_first_sub_token_or_to_all():
    words = [None, 0, 0, 1, 2, 2, None]
    continuation = [0, 2, 2]  # O, B-X, I-X: B-X continues as I-X
    assert task.align_labels(words, [1, 0, 1], continuation, False) == [-100, 1, -100, 0, 1, -100, -100]
    assert task.align_labels(words, [1, 0, 1], continuation, True) == [-100, 1, 2, 0, 1, 2, -100]
    assert task.repair(["O", "I-X", "I-X", "I-Y", "B-X", "I-X"]) == ["O", "B-X", "I-X", "B-Y", "B-X", "I-X"]
    assert task.decode(["B-X", "I-X", "O", "B-Y"], [0.5, 0.7, 0.9, 0.8]) == [(0, 2, "X", 0.6), (3, 4, "Y", 0.8)]


@pytest.mark.parametrize("method", ["head", "lora"])
def test_head_and_lora_train_what_they_should(tmp_path, tiny_model_dir, method):
    from tunesmith.data import prepare_data
    from tunesmith.training import train

    make_tagged(60, seed=2).to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    cfg = config_from_dict(_raw(tmp_path, tiny_model_dir, method={"kind": method},
                                training={"max_steps": 2, "batch_size": 16, "early_stopping_patience": None},
                                token_classification={"label_all_subtokens": True}))
    bundle = prepare_data(cfg)
    parts = task.trainer_parts(cfg, bundle, task.load_tokenizer(tiny_model_dir))
    assert all(len(y) == len(x) for y, x in zip(parts.train_ds["labels"], parts.train_ds["input_ids"], strict=True))
    result = train(cfg, bundle, tmp_path / "run")
    head = task.build_model(tiny_model_dir, bundle.labels).classifier
    if method == "head":
        assert result.trainable_params == sum(p.numel() for p in head.parameters())
    else:
        assert result.trainable_params < result.total_params and (tmp_path / "run/adapter").is_dir()
    from transformers import AutoModelForTokenClassification

    saved = AutoModelForTokenClassification.from_pretrained(str(result.model_dir))
    assert saved.config.num_labels == len(bundle.labels) and not torch.isnan(saved.classifier.weight).any()
    assert len(bundle.train[TAGS].iloc[0]) == len(bundle.train[TOKENS].iloc[0])


def test_per_token_kd_makes_a_smaller_tagger_follow_its_teacher_and_the_report_compares_them(tmp_path, tiny_model_dir):
    """KD only, from a teacher trained with the two entity types swapped: the 1-layer student tags the teacher's way
    (the swapped types), and the distillation report scores teacher and student on entity F1 with a CI."""
    from tunesmith.data import prepare_data
    from tunesmith.training import train
    from tunesmith.training.distill_report import compare_distilled

    rows = make_tagged(160, seed=1).to_dict("records")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = config_from_dict(_raw(tmp_path, tiny_model_dir))
    swap = {"B-GOOD": "B-BAD", "I-GOOD": "I-BAD", "B-BAD": "B-GOOD", "I-BAD": "I-GOOD", "O": "O"}
    anti = prepare_data(cfg)
    for split in ("train", "eval"):
        frame = getattr(anti, split)
        setattr(anti, split, frame.assign(**{TAGS: [[swap[t] for t in tags] for tags in frame[TAGS]]}))
    teacher = train(cfg, anti, tmp_path / "teacher").model_dir
    student_cfg = config_from_dict(_raw(tmp_path, tiny_model_dir, method={"kind": "distill", "distill": {
        "teacher": str(teacher), "kd_weight": 1.0, "hard_weight": 0.0, "student_layers": 1,
        "compare_without_kd": False}}))
    bundle = prepare_data(student_cfg)
    bundle.eval = bundle.eval.iloc[:0]  # no checkpoint choice on the human tags: the last weights are the result
    result = train(student_cfg, bundle, tmp_path / "student")
    doc = compare_distilled(student_cfg, bundle, tmp_path / "student", result.model_dir)
    assert doc["metric"] == "f1" and doc["models"]["student"]["params"] < doc["models"]["teacher"]["params"]
    teacher_f1, student_f1 = (doc["models"][r]["quality"]["f1"] for r in ("teacher", "student"))
    assert teacher_f1 < 0.3 and student_f1 < 0.3  # both tag the swapped types, which the gold never has
    words = [list(w) for w in bundle.test[TOKENS]]
    model = task.AutoModelForTokenClassification.from_pretrained(str(result.model_dir))
    tags, _, _ = task.predict_words(model, task.load_tokenizer(str(result.model_dir)), words, max_length=32)
    swapped_gold = [[swap[t] for t in sent] for sent in bundle.test[TAGS]]
    agree = sum(a == b for p, g in zip(tags, swapped_gold, strict=True) for a, b in zip(p, g, strict=False))
    total = sum(len(g) for g in swapped_gold)
    assert agree / total > 0.8  # token by token, the student says what the (swapped) teacher would
    assert doc["gap"]["ci_low"] <= doc["gap"]["delta"] <= doc["gap"]["ci_high"]


def test_a_teacher_with_another_tag_set_is_refused_by_key(tmp_path, tiny_model_dir, tagged_run):
    from tunesmith.training import TrainingError

    _, outcome = tagged_run
    with pytest.raises(ValueError, match="method.distill.unlabeled"):
        config_from_dict(_raw(tmp_path, tiny_model_dir, method={"kind": "distill", "distill": {
            "teacher": str(outcome.train_result.model_dir), "unlabeled": "more.txt"}}))
    other = task.build_model(tiny_model_dir, ["O", "B-X", "I-X"])
    other.save_pretrained(tmp_path / "other")
    task.load_tokenizer(tiny_model_dir).save_pretrained(tmp_path / "other")
    with pytest.raises(TrainingError, match="method.distill.teacher: the teacher tags"):
        task.load_teacher(tmp_path / "other", task.load_tokenizer(tiny_model_dir), ["O", "B-GOOD", "I-GOOD"],
                          config_from_dict(_raw(tmp_path, tiny_model_dir)))

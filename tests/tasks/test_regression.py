"""The regression task on a tiny BERT: standardized training, the unit folded into the head, pipeline loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.toy import POSITIVE, make_reviews

from tunesmith.config import config_from_dict
from tunesmith.data import prepare_data
from tunesmith.evaluation import evaluate
from tunesmith.families.regression import model as task
from tunesmith.training import train


def _cfg(tmp_path, base, **over):
    df = make_reviews(160, seed=4)
    df["stars"] = [10.0 + 4 * sum(w in POSITIVE for w in t.split()) + 8 * (lab == "pos")  # a target far from 0
                   for t, lab in zip(df["text"], df["label"], strict=True)]
    df.drop(columns=["label"]).to_csv(tmp_path / "r.csv", index=False)
    raw = {"name": "r", "task": "regression", "seed": 0, "data": {"path": str(tmp_path / "r.csv"), "label_column": "stars"},
           "model": {"base": base, "max_length": 32},
           "training": {"epochs": 6, "batch_size": 8, "learning_rate": 3e-3, "early_stopping_patience": None},
           "evaluation": {"bootstrap": {"samples": 200}}}
    raw.update(over)
    return config_from_dict(raw)


def test_regressor_predicts_in_the_target_unit_and_loads_in_the_text_classification_pipeline(tmp_path, tiny_model_dir):
    from transformers import pipeline

    cfg = _cfg(tmp_path, tiny_model_dir)
    bundle = prepare_data(cfg)
    result = train(cfg, bundle, tmp_path / "run")
    report = evaluate(cfg, bundle, result.model_dir)
    assert report.primary_metric == "rmse" and set(report.tuned) >= {"mae", "rmse", "spearman", "pearson", "r2"}
    assert report.tuned["rmse"] < report.baseline["rmse"]  # beats ridge on the random tiny base's embeddings
    assert report.flat_metrics()["uplift.rmse"] < 0 and "uplift_ci_high.rmse" in report.flat_metrics()

    texts = bundle.test["text"].tolist()[:6]
    pipe = pipeline("text-classification", model=str(result.model_dir), function_to_apply="none", device="cpu")
    served = np.array([out["score"] for out in pipe(texts)])
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(result.model_dir))
    assert model.config.problem_type == "regression" and model.config.num_labels == 1
    direct = task.predict(model, AutoTokenizer.from_pretrained(str(result.model_dir)), texts, max_length=32)
    assert np.allclose(served, direct, atol=1e-4)
    assert abs(served.mean() - bundle.test["target"].mean()) < 8  # the unit is the target's, not z-scores
    assert model.config.tunesmith_target["train_std"] > 1


def test_fold_target_scaling_maps_standardized_outputs_to_the_unit(tiny_model_dir):
    model = task.build_model(tiny_model_dir)
    ids = torch.tensor([[2, 10, 11, 3]])
    with torch.no_grad():
        z = model(input_ids=ids).logits.item()
        assert task.fold_target_scaling(model, mean=50.0, std=7.0) == 1
        assert model(input_ids=ids).logits.item() == pytest.approx(z * 7.0 + 50.0, rel=1e-5)


def test_huber_loss_and_lora_train(tmp_path, tiny_model_dir):
    cfg = _cfg(tmp_path, tiny_model_dir, regression={"loss": "huber", "huber_delta": 0.5},
               method={"kind": "lora"}, training={"epochs": 1, "batch_size": 16})
    parts = task.trainer_parts(cfg, prepare_data(cfg), task.load_tokenizer(tiny_model_dir))
    assert isinstance(parts.compute_loss_func, task.HuberOnStandardized) and parts.compute_loss_func.delta == 0.5
    assert abs(np.mean(parts.train_ds["labels"])) < 1e-6  # standardized on train
    result = train(cfg, prepare_data(cfg), tmp_path / "run")
    assert result.trainable_params < result.total_params and (tmp_path / "run/adapter").is_dir()


def test_a_distilled_student_follows_its_teachers_values_and_is_compared_with_it(tmp_path, tiny_model_dir):
    """KD only, from a teacher trained on negated targets: the 1-layer student predicts the teacher's values (the
    opposite of the human targets), learns from teacher-valued unlabeled texts too, and the report compares them."""
    from tunesmith.training.distill import read_distill_record
    from tunesmith.training.distill_report import compare_distilled, distill_flat

    cfg = _cfg(tmp_path, tiny_model_dir)
    bundle = prepare_data(cfg)
    anti = prepare_data(cfg)
    anti.train = anti.train.assign(target=-anti.train["target"])
    anti.eval = anti.eval.assign(target=-anti.eval["target"])
    teacher = train(cfg, anti, tmp_path / "teacher").model_dir
    more = tmp_path / "more.txt"
    more.write_text("\n".join(make_reviews(40, seed=77)["text"]) + "\n", encoding="utf-8")
    student_cfg = _cfg(tmp_path, tiny_model_dir, method={"kind": "distill", "distill": {
        "teacher": str(teacher), "kd_weight": 1.0, "hard_weight": 0.0, "student_layers": 1, "unlabeled": str(more),
        "compare_without_kd": False}})
    bundle.eval = bundle.eval.iloc[:0]  # no checkpoint choice on the human targets: the last weights are the result
    result = train(student_cfg, bundle, tmp_path / "student")
    record = read_distill_record(tmp_path / "student")
    assert record["synthetic_rows"] > 0 and record["task"] == "regression"

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(result.model_dir))
    assert model.config.num_hidden_layers == 1
    texts, y = bundle.test["text"].tolist(), bundle.test["target"].to_numpy()
    pred = task.predict(model, AutoTokenizer.from_pretrained(str(result.model_dir)), texts, max_length=32)
    assert np.corrcoef(pred, y)[0, 1] < -0.5  # it learned the teacher's values, not the targets
    doc = compare_distilled(student_cfg, bundle, tmp_path / "student", result.model_dir)
    assert doc["metric"] == "rmse" and set(doc["models"]) == {"teacher", "student"}
    assert doc["gap"]["ci_low"] <= doc["gap"]["delta"] <= doc["gap"]["ci_high"]
    assert "distill.gap.rmse" in distill_flat(doc)

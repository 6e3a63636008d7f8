"""`tunesmith run` with method.kind: distill, end to end: a registered teacher, a smaller student, teacher-labelled
rows, the three-way comparison in metrics.json and the report, distillation gates, and lineage tags."""

from __future__ import annotations

import json

import pytest
from tests.integration.test_cli_run import in_process, tunesmith, write_project
from tests.toy import make_reviews

pytestmark = pytest.mark.integration


def test_distill_from_a_registered_teacher(tmp_path, tiny_model_dir):
    write_project(tmp_path, tiny_model_dir, ["accuracy >= 0.6"])
    assert "registered toy-sentiment version 1" in in_process("run", "config.yaml", cwd=tmp_path).stdout

    cfg = json.loads((tmp_path / "config.yaml").read_text())
    (tmp_path / "unlabeled.csv").write_text(make_reviews(80, seed=31)[["text"]].to_csv(index=False))
    cfg.update(name="toy-student", gates=["distill.size_ratio < 0.9", "distill.gap.macro_f1 >= -0.5",
                                          "accuracy >= 0.6"])
    cfg["training"]["epochs"] = 6
    cfg["cost"] = {"cpu_hour": 0.05}  # the report states what the student saves per 1,000 answers
    cfg["method"] = {"kind": "distill", "distill": {"teacher": "toy-sentiment@challenger", "student_layers": 1,
                                                     "unlabeled": "unlabeled.csv", "synthetic": "hard"}}
    (tmp_path / "student.yaml").write_text(json.dumps(cfg))
    out = tunesmith("run", "student.yaml", cwd=tmp_path).stdout
    assert "distill: student" in out and "faster at batch 1" in out
    assert "gate decision: PASSED" in out and "registered toy-student version 1" in out

    (run,) = list((tmp_path / ".tunesmith/runs/toy-student").iterdir())
    doc = json.loads((run / "metrics.json").read_text())["distillation"]
    assert set(doc["models"]) == {"teacher", "student", "without_kd"}
    for model in doc["models"].values():
        assert model["ms_per_example_b1"] > 0 and model["weights_mb"] > 0 and 0 <= model["quality"]["macro_f1"] <= 1
    assert doc["models"]["student"]["params"] < doc["models"]["teacher"]["params"]
    assert doc["gap"]["ci_low"] <= doc["gap"]["delta"] <= doc["gap"]["ci_high"]
    assert doc["kd_gain"] is not None and doc["record"]["synthetic_rows"] == 80
    saved = doc["cost_per_1k"]
    assert 0 < saved["student"] < saved["teacher"] and saved["saving"] == pytest.approx(
        1 - saved["student"] / saved["teacher"]) and saved["currency"] == "USD"
    report = (run / "report.html").read_text()
    assert "Distillation" in report and f"{saved['saving']:.0%} saved" in report
    shown = json.loads(in_process("models", "show", "toy-student", cwd=tmp_path).stdout)
    tags = shown["versions"][0]["tags"]
    assert tags["distill.teacher"] == "toy-sentiment@challenger" and tags["distill.synthetic_rows"] == "80"
    assert tags["distill.label_source"] == "teacher:toy-sentiment@challenger"

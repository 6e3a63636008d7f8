import json
import re

from tunesmith.evaluation import gate, write_report

DATA_REPORT = {  # the shape of tunesmith.data DataReport.to_dict()
    "rows_read": 182, "rows_used": 180, "quarantined": 2, "split_sizes": {"train": 80, "eval": 40, "test": 60},
    "quarantined_by_reason": {"empty text": 1, "unknown label '<img src=x onerror=alert(1)>'": 1},
    "label_distribution": {"train": {"<script>alert(1)</script>": 40, "neg": 40}, "test": {"neg": 30}},
    "text_length": {"train": {"tokens": {"mean": 8.5, "max": 15.0}}},
    "sources": [{"key": "path", "path": "data/<x>.jsonl", "rows_read": 182}],
    "warnings": ["2 rows <quarantined>"],
}
TRAIN_RESULT = {
    "method": "full", "precision": "fp32", "trainable_params": 1000, "train_runtime_s": 1.5,
    "log_history": [{"loss": 0.7, "step": 5, "epoch": 0.5}, {"loss": 0.5, "step": 10, "epoch": 1.0},
                    {"eval_macro_f1": 0.6, "eval_loss": 0.6, "epoch": 1.0, "step": 10},
                    {"loss": 0.3, "step": 15, "epoch": 1.5}, {"eval_macro_f1": 0.8, "epoch": 2.0, "step": 20}],
}


def test_report_is_self_contained_and_escaped(evaluated, eval_cfg, tmp_path):
    decision = gate(evaluated.flat_metrics(), eval_cfg.gates, primary_metric="macro_f1")
    path = write_report(tmp_path, config=eval_cfg, data_report=DATA_REPORT, train_result=TRAIN_RESULT,
                        eval_report=evaluated, decision=decision, lineage={"git_commit": "abc123", "note": "<b>x</b>"})
    assert path == tmp_path / "report.html"
    html = path.read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html, re.IGNORECASE)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert html.count('src="data:image/png;base64,') == 3  # learning curves, confusion matrix, reliability
    for section in ("Data", "Training", "Base vs tuned", "Calibration", "Slices", "Gate decision", "Lineage"):
        assert f"<h2>{section}" in html
    assert "class='pass'" in html and "empty text" in html and "Label distribution" in html
    assert "2 rows &lt;quarantined&gt;" in html and "data/&lt;x&gt;.jsonl" in html

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"tuned", "baseline", "champion", "uplift", "gates", "calibration", "slices"} <= set(metrics)
    assert metrics["gates"]["passed"] is True and len(metrics["gates"]["rules"]) == 3
    assert metrics["tuned"]["accuracy"] == evaluated.tuned["accuracy"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp files replaced


def test_report_without_training_or_rules_marks_failures(evaluated, eval_cfg, tmp_path):
    decision = gate(evaluated.flat_metrics(), eval_cfg.gates.model_validate(["accuracy >= 1.01"]),
                    primary_metric="macro_f1")
    path = write_report(tmp_path, config=eval_cfg.model_dump(mode="json"), data_report={}, train_result=None,
                        eval_report=evaluated, decision=decision, lineage={})
    html = path.read_text()
    assert "class='fail'" in html and "gates FAILED" in html and "no training result" in html
    assert json.loads((tmp_path / "metrics.json").read_text())["gates"]["passed"] is False


def test_report_says_why_the_champion_was_not_compared(evaluated, eval_cfg, tmp_path):
    import dataclasses

    report = dataclasses.replace(evaluated, champion=None, vs_champion=None,
                                 champion_status="not comparable: champion has labels ['<b>']")
    decision = gate(report.flat_metrics(), eval_cfg.gates, primary_metric="macro_f1",
                    has_champion=report.has_champion, champion_note=report.champion_note)
    html = write_report(tmp_path, config=eval_cfg, data_report={}, train_result=None, eval_report=report,
                        decision=decision, lineage={}).read_text()
    assert "Champion not comparable: champion has labels [&#x27;&lt;b&gt;&#x27;]; its gate rules fail" in html
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["champion_status"].startswith("not comparable") and metrics["gates"]["passed"] is False
    assert "Champion compared on 60 test rows." in write_report(
        tmp_path, config=eval_cfg, data_report={}, train_result=None, eval_report=evaluated, decision=decision,
        lineage={}).read_text()

"""Feedback labels tied to logged predictions, file imports with file:line errors, and live accuracy / burn rate."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tunesmith.config import SloConfig
from tunesmith.monitoring.feedback import (
    FeedbackError,
    feedback_labels,
    import_feedback,
    labeled_predictions,
    record_feedback,
)
from tunesmith.monitoring.live import live_accuracy, scores
from tunesmith.monitoring.predictions import PredictionLog, predictions

LABELS = ["neg", "pos"]


@pytest.fixture()
def url(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    log = PredictionLog(url)
    for rid, texts, version in (("r1", ["great film"], 1), ("r2", ["dull", "bland plot"], 1), ("r3", ["fine"], 2)):
        for text in texts:
            log.record(request_id=rid, model="m", version=version, role="champion", route="/v1/classify",
                       input=text, output={"label": "pos", "score": 0.9, "scores": {"neg": 0.1, "pos": 0.9}},
                       confidence=0.9, latency_ms=1.0)
    log.record(request_id="r1", model="m", version=2, role="shadow", route="/v1/classify", input="great film",
               output={"label": "neg", "score": 0.6, "scores": {"neg": 0.6, "pos": 0.4}}, confidence=0.6,
               latency_ms=1.0, force=True)
    log.close()
    return url


def test_feedback_is_tied_to_the_logged_text_and_refused_with_404_or_422(url):
    row = record_feedback(url, model="m", request_id="r2", index=1, label="neg", labels=LABELS, labeled_by="ann")
    assert row["text"] == "bland plot" and row["new"]
    assert not record_feedback(url, model="m", request_id="r2", index=1, label="neg", labels=LABELS,
                               labeled_by="ann")["new"]  # the same label again adds nothing
    with pytest.raises(FeedbackError, match="no logged prediction of m for request id 'zz'") as missing:
        record_feedback(url, model="m", request_id="zz", label="neg", labels=LABELS)
    assert missing.value.status == 404
    with pytest.raises(FeedbackError, match=r"index 2\)") as past_end:
        record_feedback(url, model="m", request_id="r2", index=2, label="neg", labels=LABELS)
    assert past_end.value.status == 404
    with pytest.raises(FeedbackError, match="label 'meh' is not one of the model's labels") as bad:
        record_feedback(url, model="m", request_id="r1", label="meh", labels=LABELS)
    assert bad.value.status == 422
    assert [r["label"] for r in feedback_labels(url, "m")] == ["neg"]


def test_import_stores_good_rows_and_names_each_bad_line(url, tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join([
        json.dumps({"request_id": "r1", "label": "pos", "labeled_at": "2026-11-20T10:00:00Z"}),
        "{not json",
        json.dumps({"request_id": "r9", "label": "pos"}),
        json.dumps({"request_id": "r3", "label": "maybe"}),
        json.dumps({"text": "a brand new labeled text", "label": "neg", "labeled_by": "bob"}),
        json.dumps({"label": "neg"}),
        json.dumps({"request_id": "r3", "label": "neg", "labeled_at": "yesterday"}),
    ]) + "\n")
    result = import_feedback(url, path, model="m", labels=LABELS, labeled_by="team")
    assert result.imported == 2
    lines = sorted(result.bad)
    assert [line.split(": ")[0] for line in lines] == [f"{path}:{n}" for n in (2, 3, 4, 6, 7)]
    assert any("'maybe' is not one of" in line for line in lines)
    assert any("request id 'r9'" in line for line in lines)
    assert any("not an ISO-8601 time" in line for line in lines)
    again = import_feedback(url, path, model="m", labels=LABELS, labeled_by="team")
    assert again.imported == 0 and again.already_present == 2  # importing twice adds nothing
    stored = {r["text"]: r for r in feedback_labels(url, "m")}
    assert stored["great film"]["labeled_by"] == "team" and stored["great film"]["labeled_at"].startswith("2026-11-20")
    assert stored["a brand new labeled text"]["request_id"] is None and stored["a brand new labeled text"]["source"] \
        == "import"


def test_import_reads_csv_and_reports_its_lines(url, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("request_id,index,label\nr2,0,neg\nr2,x,neg\n")
    result = import_feedback(url, path, model="m", labels=LABELS)
    assert result.imported == 1 and result.bad == [f"{path}:3: index 'x' is not a whole number"]


def test_labeled_predictions_join_every_role_to_the_label_of_its_text(url):
    record_feedback(url, model="m", request_id="r1", label="neg", labels=LABELS)
    record_feedback(url, model="m", request_id="r2", index=1, label="neg", labels=LABELS)
    rows = labeled_predictions(url, "m")
    got = sorted((r["request_id"], r["role"], r["input"], r["predicted"], r["true_label"]) for r in rows)
    assert got == [("r1", "champion", '"great film"', "pos", "neg"), ("r1", "shadow", '"great film"', "neg", "neg"),
                   ("r2", "champion", '"bland plot"', "pos", "neg")]


def _rows(pairs, version=1, start=None):
    start = start or datetime(2026, 11, 22, 8, tzinfo=timezone.utc)
    return [{"version": version, "role": "champion", "predicted": p, "true_label": t,
             "ts": start + timedelta(minutes=20 * i)} for i, (p, t) in enumerate(pairs)]


def test_live_accuracy_series_burn_rate_and_slo_verdict():
    slo = SloConfig(accuracy=0.9, macro_f1=0.8, bucket="1h", min_labels=4)
    good = _rows([("pos", "pos"), ("neg", "neg")] * 3)
    bad = _rows([("pos", "pos"), ("pos", "neg"), ("pos", "neg"), ("neg", "neg")], version=2)
    live = live_accuracy(good + bad, LABELS, slo)
    v1, v2 = live["versions"][1], live["versions"][2]
    assert v1["accuracy"] == 1.0 and v1["burn_rate"] == 0.0 and v1["status"] == "ok"
    assert len(v1["series"]) == 2 and [p["n"] for p in v1["series"]] == [3, 3]  # 20-minute steps, 1h buckets
    assert v2["accuracy"] == 0.5 and v2["burn_rate"] == pytest.approx(5.0) and v2["status"] == "breach"
    assert "macro_f1" in v2["note"]
    few = live_accuracy(_rows([("pos", "neg")]), LABELS, slo)["versions"][1]
    assert few["status"] == "n/a" and "min_labels" in few["note"]


def test_macro_f1_counts_classes_seen_in_truth_or_prediction():
    assert scores(["a", "b"], ["a", "a"], ["a", "b", "c"])["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_feedback_table_lives_in_the_prediction_database(url):
    record_feedback(url, model="m", request_id="r3", label="pos", labels=LABELS)
    engine = sa.create_engine(url)
    assert {"predictions", "feedback"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert predictions.name == "predictions"


def test_a_batch_item_is_found_by_its_stored_position_whatever_was_sampled_or_finished_first(tmp_path):
    """A batch's items are sampled and finish independently: item 1 of r9 was not logged, item 2 was logged before
    item 0. Feedback on index 2 is about the third text, and live quality pairs it with that text's answer; a row
    from a log written before positions were stored still counts its position."""
    from tunesmith.review.enqueue import with_positions

    url = f"sqlite:///{tmp_path}/p.db"
    log = PredictionLog(url)
    for idx, text, label in ((2, "third text", "neg"), (0, "first text", "pos")):
        log.record(request_id="r9", model="m", version=1, role="champion", route="/v1/classify", input=text,
                   output={"label": label, "score": 0.9, "scores": {}}, confidence=0.9, latency_ms=1.0, idx=idx)
    for text in ("old first", "old second"):  # an older server's rows: no position stored
        log.record(request_id="r0", model="m", version=1, role="champion", route="/v1/classify", input=text,
                   output={"label": "pos", "score": 0.9, "scores": {}}, confidence=0.9, latency_ms=1.0)
    log.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(predictions.update().where(predictions.c.request_id == "r0").values(idx=None))
    engine.dispose()

    third = record_feedback(url, model="m", request_id="r9", index=2, label="neg", labels=LABELS)
    assert third["text"] == "third text"
    with pytest.raises(FeedbackError, match="index 1"):  # never logged: nothing to attach it to
        record_feedback(url, model="m", request_id="r9", index=1, label="neg", labels=LABELS)
    assert record_feedback(url, model="m", request_id="r0", index=1, label="pos", labels=LABELS)["text"] == "old second"
    paired = {(r["request_id"], r["idx"]): (r["input"], r["predicted"]) for r in labeled_predictions(url, "m")}
    assert paired == {("r9", 2): ('"third text"', "neg"), ("r0", 1): ('"old second"', "pos")}
    from tunesmith.monitoring.predictions import read_predictions

    positions = {(r["request_id"], r["input"]): r["idx"] for r in with_positions(read_predictions(url))}
    assert positions == {("r9", "third text"): 2, ("r9", "first text"): 0, ("r0", "old first"): 0,
                         ("r0", "old second"): 1}


def test_feedback_in_a_fresh_process_whose_log_was_set_up_before_the_feedback_table_was_imported(tmp_path):
    """A server logs its first prediction (db_engine on the URL) before its first feedback imports the feedback
    table: the feedback table must still be created (it was not: the first POST /v1/feedback answered 500)."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/log.db"
    code = ("import sys\n"
            "from tunesmith.monitoring.predictions import db_engine\n"
            f"db_engine({url!r}).dispose()\n"
            "assert 'tunesmith.monitoring.feedback' not in sys.modules\n"
            "from tunesmith.monitoring.feedback import record_feedback\n"
            f"row = record_feedback({url!r}, model='m', text='great film', label='pos', labels=['pos', 'neg'])\n"
            "print(row['new'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]

"""Dataset versions for retraining (dedup, leakage against the frozen test, rehearsal, recent slice), the trigger
rules, the cron lock, and the CLI's feedback import / monitor on an empty log."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from filelock import FileLock
from typer.testing import CliRunner

from tunesmith.config import config_from_dict
from tunesmith.retrain.dataset import (
    build_dataset_version,
    collect_labels,
    count_new_labels,
    label_sources,
    original_splits,
)
from tunesmith.retrain.triggers import LOCK_FILE, act, evaluate_triggers


def _cfg(tmp_path, **extra):
    rows = [{"text": f"row number {i} {'good' if i % 2 else 'bad'}", "label": "pos" if i % 2 else "neg"}
            for i in range(100)]
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    raw = {"name": "m", "data": {"path": str(tmp_path / "d.csv"), "labels": ["neg", "pos"],
                                 "checks": {"label_issues": {"enabled": False}, "pii": {"presidio": "off"}}},
           "retrain": {"datasets_dir": str(tmp_path / "ds"), "rehearsal": 0.5, "recent_holdout": 0.25},
           "monitoring": {"report_dir": str(tmp_path / "mon")},
           "serving": {"predictions": {"url": f"sqlite:///{tmp_path}/p.db"}}, **extra}
    return config_from_dict(raw)


def _label(text, label, at, source="feedback"):
    return {"text": text, "label": label, "source": source, "labeled_by": "ann", "labeled_at": at, "request_id": None}


def test_dataset_version_rehearses_freezes_test_holds_out_the_newest_and_quarantines_with_reasons(tmp_path):
    cfg = _cfg(tmp_path)
    splits = original_splits(cfg)
    test_text, old_text = splits["test"]["text"][0], splits["train"]["text"][0]
    old_label = splits["train"]["label"][0]
    flipped = "pos" if old_label == "neg" else "neg"
    new = [_label(f"fresh text {i}", "pos" if i % 3 else "neg", f"2026-11-22T08:{i:02d}:00") for i in range(20)]
    labels = new + [
        _label(test_text, "pos", "2026-11-22T07:00:00"),  # leaks into the frozen test split
        _label("fresh text 0", "pos", "2026-11-22T07:30:00"),  # the same text, labeled again later (new[0])
        _label("some text", "maybe", "2026-11-22T07:00:00"),  # not a label of the model
        _label(old_text, flipped, "2026-11-22T06:00:00"),  # a correction of a training row
    ]
    v1 = build_dataset_version(cfg, "m", labels, parent=None, trigger="drift")
    m = v1.manifest
    assert v1.version == 1 and m["trigger"] == "drift" and m["parent"] is None
    assert m["quarantined_by_reason"] == {"leakage": 1, "unknown_label": 1, "superseded": 1}
    quarantined = [json.loads(line) for line in (v1.path / "quarantine.jsonl").read_text().splitlines()]
    assert {q["reason"] for q in quarantined} == {"leakage", "unknown_label", "superseded"}
    assert pd.read_json(v1.file("test"), lines=True)["text"].tolist() == splits["test"]["text"].tolist()
    recent = pd.read_json(v1.file("recent"), lines=True)
    train = pd.read_json(v1.file("train"), lines=True, dtype={"label": str})
    assert m["new_labels"] == 21 and len(recent) == 5  # 25% of the new labels: the newest five texts
    assert recent["text"].tolist() == [f"fresh text {i}" for i in range(15, 20)]
    assert not set(recent["text"]) & set(train["text"])  # the recent slice is never trained on
    assert train.loc[train["text"] == old_text, "label"].tolist() == [flipped]  # the correction replaced the row
    assert m["train_from_parent"] == round((len(splits["train"]) - 1) * 0.5)
    assert m["label_sources"] == {"feedback": 21}
    # 15% of the other new texts join the eval split after the parent's rows: selection sees the new traffic
    evaluated = pd.read_json(v1.file("eval"), lines=True)
    n_eval = len(splits["eval"])
    assert m["new_labels_eval"] == 2 and m["rows"]["eval"] == len(evaluated) == n_eval + 2
    assert evaluated["text"][:n_eval].tolist() == splits["eval"]["text"].tolist()
    new_eval = set(evaluated["text"][n_eval:])
    assert new_eval <= {f"fresh text {i}" for i in range(15)} and not new_eval & set(train["text"])
    assert m["new_labels_trained"] == 21 - 5 - 2
    provenance = [json.loads(line) for line in (v1.path / "labels.jsonl").read_text().splitlines()]
    assert {p["text"] for p in provenance if p["split"] == "eval"} == new_eval

    assert count_new_labels(labels, v1) == 0  # everything is in v1 now
    relabel_eval = _label(sorted(new_eval)[0], "neg", "2026-11-23T00:00:01")
    later = [_label("later text", "pos", "2026-11-23T00:00:00"), relabel_eval]
    v2 = build_dataset_version(cfg, "m", labels + later, parent=v1)
    assert v2.version == 2 and v2.manifest["parent"] == 1 and v2.manifest["new_labels"] == 1
    assert pd.read_json(v2.file("test"), lines=True)["text"].tolist() == splits["test"]["text"].tolist()
    assert pd.read_json(v2.file("eval"), lines=True)["text"].tolist() == evaluated["text"].tolist()
    assert v2.manifest["quarantined_by_reason"] == {"leakage": 1}  # a new label for an eval row trains nothing


def test_eval_holdout_takes_whole_groups_in_a_seeded_order_and_leaves_rows_to_train(tmp_path):
    from types import SimpleNamespace

    from tunesmith.retrain.dataset import eval_holdout

    cfg = _cfg(tmp_path)
    hooks = SimpleNamespace(group=lambda row: row["query"], key=lambda row: row["query"] + "|" + row["document"])
    rows = [{"key": f"{q}{d}", "row": {"query": f"q{q}", "document": f"d{d}"}} for q in range(10) for d in range(3)]
    chosen = eval_holdout(cfg, hooks, rows)
    groups = {r["row"]["query"] for r in chosen}
    assert len(chosen) == 6 and len(groups) == 2  # 15% of 30 rows rounds to 4: two whole queries of 3
    assert eval_holdout(cfg, hooks, rows) == chosen  # seeded: the same rows every time
    assert eval_holdout(cfg.model_copy(update={"seed": 7}), hooks, rows) != chosen
    one_group = [{"key": str(d), "row": {"query": "q", "document": f"d{d}"}} for d in range(20)]
    assert eval_holdout(cfg, hooks, one_group) == []  # the only group would leave nothing new to train on
    cfg.retrain.eval_holdout = 0
    assert eval_holdout(cfg, hooks, rows) == []


def test_reviewed_labels_enter_the_next_dataset_version_with_reviewer_and_time(tmp_path):
    from tunesmith.review.store import Action, ReviewItem, add_items, add_label, list_items

    cfg = _cfg(tmp_path)
    url = cfg.serving.predictions.url
    assert list(label_sources(cfg)) == ["feedback", "review"]
    add_items(url, [ReviewItem(model="m", source="low_confidence", text=f"queued text {i}", guess="pos",
                               confidence=0.55, request_id=f"r{i}") for i in range(4)])
    ids = [it["id"] for it in list_items(url, "m")]
    add_label(url, ids[0], label="neg", reviewer="ana", action=Action.RELABEL)
    add_label(url, ids[1], label="pos", reviewer="bo", action=Action.ACCEPT)
    add_label(url, ids[2], label=None, reviewer="ana", action=Action.SKIP)  # a skip is no label

    labels = collect_labels(cfg, url, "m")
    assert sorted((r["text"], r["label"], r["labeled_by"], r["source"]) for r in labels) == [
        ("queued text 0", "neg", "ana", "review"), ("queued text 1", "pos", "bo", "review")]
    v1 = build_dataset_version(cfg, "m", labels, parent=None, trigger="new_labels")
    assert v1.manifest["label_sources"] == {"review": 2}
    rows = pd.concat([pd.read_json(v1.file(s), lines=True, dtype={"label": str}) for s in ("train", "recent")])
    assert sorted(t for t in rows["text"] if t.startswith("queued text")) == ["queued text 0", "queued text 1"]
    provenance = [json.loads(line) for line in (v1.path / "labels.jsonl").read_text().splitlines()]
    assert sorted((p["text"], p["labeled_by"], p["source"]) for p in provenance) == [
        ("queued text 0", "ana", "review"), ("queued text 1", "bo", "review")]
    assert all(p["labeled_at"].startswith("20") and p["split"] in ("train", "recent") for p in provenance)


def _report(detected=True, f1=0.5, last_id=7):
    return {"predictions": 100, "drift": {"detected": detected, "flagged": ["token_distribution"],
                                          "last_prediction_id": last_id},
            "live": {"versions": {1: {"status": "breach" if f1 < 0.8 else "ok", "macro_f1": f1,
                                      "note": f"macro_f1 {f1} < 0.8"}}}}


def test_triggers_fire_once_per_evidence_and_wait_for_enough_labels(tmp_path):
    cfg = _cfg(tmp_path, monitoring={"triggers": {"new_labels": 50, "min_new_labels": 10, "schedule": "7d"}})
    state = {"acted": [], "last_retrain": None}
    fired = evaluate_triggers(cfg, _report(), new_labels=60, newest_label="k1", state=state, now=1e9)
    assert [t["name"] for t in fired["fired"]] == ["drift", "live_f1_below_slo", "new_labels", "schedule"]
    state["acted"] = [t["key"] for t in fired["fired"]]
    state["last_retrain"] = 1e9
    again = evaluate_triggers(cfg, _report(), new_labels=60, newest_label="k1", state=state, now=1e9 + 60)
    assert again["fired"] == [] and len(again["skipped"]) == 3  # schedule is not due yet; the rest were acted on
    fresh = evaluate_triggers(cfg, _report(last_id=9), new_labels=60, newest_label="k1", state=state, now=1e9 + 60)
    assert [t["name"] for t in fresh["fired"]] == ["drift", "live_f1_below_slo"]  # new window, new evidence
    few = evaluate_triggers(cfg, _report(last_id=11), new_labels=3, newest_label="k1", state=state, now=1e9 + 60)
    assert few["fired"] == [] and "min_new_labels=10" in few["skipped"][0]["why"]
    quiet = evaluate_triggers(cfg, _report(detected=False, f1=0.95), new_labels=5, newest_label=None, state=state,
                              now=1e9 + 8 * 86400)
    assert [t["name"] for t in quiet["fired"]] == []  # the weekly schedule is due, but 5 labels are too few


def test_a_family_live_quality_breach_fires_once_per_window(tmp_path):
    cfg = _cfg(tmp_path)
    report = {"predictions": 80, "drift": {"detected": False, "flagged": [], "last_prediction_id": 41},
              "live": {"kind": "quality", "versions": {2: {"status": "breach", "note": "mae 2.000 > 0.5"},
                                                       3: {"status": "ok", "note": ""}}}}
    state = {"acted": [], "last_retrain": None}
    fired = evaluate_triggers(cfg, report, new_labels=30, newest_label="k", state=state, now=1e9)
    assert [(t["name"], t["reason"]) for t in fired["fired"]] == [("live_quality_below_slo",
                                                                   "version 2: mae 2.000 > 0.5")]
    state["acted"] = [t["key"] for t in fired["fired"]]
    assert evaluate_triggers(cfg, report, new_labels=30, newest_label="k", state=state, now=1e9)["fired"] == []
    off = _cfg(tmp_path, monitoring={"triggers": {"live_quality_below_slo": False}})
    assert evaluate_triggers(off, report, new_labels=30, newest_label="k", state={}, now=1e9)["fired"] == []


def test_a_family_live_macro_f1_answers_to_its_targets_not_to_the_classifier_slo(tmp_path):
    """A multi-label model's live report has a macro-F1 too; it meets the team's monitoring.slo.targets (status
    ok), so the classifier's slo.macro_f1 (0.8 by default, never set for this model) must not start a retrain."""
    cfg = _cfg(tmp_path)
    report = {"predictions": 80, "drift": {"detected": False, "flagged": [], "last_prediction_id": 41},
              "live": {"kind": "quality", "versions": {1: {"status": "ok", "micro_f1": 0.7, "macro_f1": 0.4,
                                                           "note": ""}}}}
    assert evaluate_triggers(cfg, report, new_labels=30, newest_label="k", state={}, now=1e9)["fired"] == []
    classifier = evaluate_triggers(cfg, _report(f1=0.4), new_labels=30, newest_label="k", state={}, now=1e9)
    assert "live_f1_below_slo" in [t["name"] for t in classifier["fired"]]


def test_act_returns_at_once_when_another_run_holds_the_lock(tmp_path):
    cfg = _cfg(tmp_path)
    lock_dir = tmp_path / "mon" / "m"
    lock_dir.mkdir(parents=True)
    with FileLock(str(lock_dir / LOCK_FILE)):
        result = act(cfg, _report())
    assert result["action"] == "locked" and "act.lock" in result["note"]


def test_act_does_not_retrain_a_family_retrain_does_not_cover_yet(tmp_path):
    from tests.families import toy_family

    from tunesmith import families

    families.register(toy_family.TOY)  # a family with no dataset versions (and no feedback)
    try:
        cfg = _cfg(tmp_path, task=toy_family.KIND, data={"path": str(tmp_path / "d.jsonl")},
                   model={"base": str(toy_family.write_base(tmp_path / "toy-base"))})
        result = act(cfg, _report())  # drift detected and a breach: reported, no retrain started
    finally:
        families.unregister(toy_family.KIND)
    assert result["action"] == "none" and "retrain does not cover toy-keywords models yet" in result["note"]
    assert not (tmp_path / "mon" / "m").exists()  # nothing was locked or recorded


def test_cli_feedback_import_lists_bad_lines_and_monitor_reports_an_empty_log(tmp_path, monkeypatch):
    from tunesmith.cli import app
    from tunesmith.monitoring.predictions import PredictionLog

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(tmp_path)
    log = PredictionLog(cfg.serving.predictions.url)
    log.record(request_id="r1", model="m", version=1, role="champion", route="/v1/classify", input="hi",
               output={"label": "pos", "score": 0.9}, confidence=0.9, latency_ms=1)
    log.close()
    (tmp_path / "c.yaml").write_text(json.dumps(cfg.model_dump(mode="json")))
    (tmp_path / "fb.jsonl").write_text('{"request_id": "r1", "label": "neg"}\n{"request_id": "r1", "label": "x"}\n')
    runner = CliRunner()
    out = runner.invoke(app, ["feedback", "import", "fb.jsonl", "--config", "c.yaml"])
    assert out.exit_code == 2 and "imported 1 labels for m" in out.output and "fb.jsonl:2: label 'x'" in out.output
    mon = runner.invoke(app, ["monitor", "--config", "c.yaml", "--window", "10"])
    assert mon.exit_code == 0, mon.output
    assert "rows < monitoring.drift.min_rows=30" in mon.output
    report = json.loads((tmp_path / "mon" / "m" / "latest.json").read_text())
    assert report["predictions"] == 1 and report["labeled"] == 1 and report["live"]["versions"]["1"]["n"] == 1
    bad = runner.invoke(app, ["monitor", "--config", "c.yaml", "--window", "soon"])
    assert bad.exit_code == 2 and "cannot read window 'soon'" in bad.output


@pytest.mark.parametrize("window", ["500", "30m", "24h", "7d"])
def test_windows_are_counts_or_durations(window):
    from tunesmith.config import parse_window

    count, seconds = parse_window(window)
    assert (count is None) != (seconds is None)



def test_eval_holdout_keeps_near_duplicate_rows_together(tmp_path):
    """Paraphrases of one question with one answer: all of them in eval or none, so the leakage gate (eval vs
    train near-duplicates) has nothing to refuse."""
    from types import SimpleNamespace

    from tunesmith.data.dedup import near_duplicate_pairs
    from tunesmith.retrain.dataset import eval_holdout

    cfg = _cfg(tmp_path)
    answers = {i: f"answer number {i}: " + " ".join(f"step{i}x{k}" for k in range(12)) for i in range(6)}
    rows = [{"key": f"{i}-{j}", "row": {"text": f"question {i} variant {j}", "label": answers[i]}}
            for i in range(6) for j in range(5)]
    hooks = SimpleNamespace(group=None, key=lambda row: row["text"])
    chosen = eval_holdout(cfg, hooks, rows)
    picked = {r["key"] for r in chosen}
    assert chosen and {r["key"].split("-")[0] for r in chosen} != {str(i) for i in range(6)}
    texts = [json.dumps(r["row"], sort_keys=True) for r in rows]
    for i, j in near_duplicate_pairs(texts, threshold=0.7).pairs:  # no near-duplicate straddles eval and train
        assert (rows[int(i)]["key"] in picked) == (rows[int(j)]["key"] in picked)


def test_a_new_label_that_paraphrases_a_frozen_row_never_trains(tmp_path):
    """Users ask the test set's questions again in other words: such a label is quarantined as leakage (a
    paraphrase of a test row) or joins the eval split (of an eval row), and the leakage gate passes the version."""
    from tunesmith.data import prepare_data
    from tunesmith.retrain.run import derived_config

    cfg = _cfg(tmp_path, retrain={"datasets_dir": str(tmp_path / "ds"), "recent_holdout": 0.1, "eval_holdout": 0.0})
    splits = original_splits(cfg)
    test_row, eval_row = splits["test"].iloc[0], splits["eval"].iloc[0]
    new = [_label(f"fresh words number {i} here", "pos" if i % 2 else "neg", f"2026-11-22T08:{i:02d}:00")
           for i in range(20)]
    near_test = _label(f"{test_row['text']} again", test_row["label"], "2026-11-22T07:00:00")
    near_eval = _label(f"{eval_row['text']} again", eval_row["label"], "2026-11-22T07:01:00")
    version = build_dataset_version(cfg, "m", [near_test, near_eval, *new], parent=None)
    quarantined = [json.loads(line) for line in (version.path / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["reason"], q["text"]) for q in quarantined] == [("leakage", near_test["text"])]
    assert "near-duplicate of a row in the frozen test split" in quarantined[0]["detail"]
    train = pd.read_json(version.file("train"), lines=True)["text"].tolist()
    evaluated = pd.read_json(version.file("eval"), lines=True)["text"].tolist()
    assert near_eval["text"] in evaluated and near_eval["text"] not in train and near_test["text"] not in train
    assert version.manifest["new_labels_eval"] == 1 and version.manifest["rows"]["recent"] == 2
    bundle = prepare_data(derived_config(cfg, version, None), None)  # the leakage gate: nothing to refuse
    assert bundle.report.checks["leakage"]["rows"] == 0, bundle.report.checks["leakage"]


def test_a_dataset_version_that_fails_its_data_gates_is_a_failed_retrain_not_a_crash(tmp_path, monkeypatch):
    import tunesmith.pipeline as pipeline
    from tunesmith.data import DataChecksFailed
    from tunesmith.registry import open_store
    from tunesmith.retrain import retrain

    cfg = _cfg(tmp_path, registry={"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"})
    rows = pd.read_csv(tmp_path / "d.csv")  # a slice column and a gate on it: a dataset version keeps no such column
    rows.assign(team=["a", "b"] * 50).to_csv(tmp_path / "d.csv", index=False)
    raw = cfg.model_dump(mode="json")
    raw["data"]["slice_columns"], raw["evaluation"]["slices"] = ["team"], ["team", "text_length"]
    raw["gates"]["rules"] = ["accuracy >= 0.5", "slices.team.max_gap.macro_f1 <= 0.5"]
    cfg = config_from_dict(raw)

    def refuse(*_args, **_kwargs):
        raise DataChecksFailed(["data.checks.leakage: 5 rows repeat a text of an earlier split"])

    monkeypatch.setattr(pipeline, "run", refuse)
    labels = [_label(f"fresh text {i}", "pos" if i % 2 else "neg", f"2026-11-22T08:{i:02d}:00") for i in range(20)]
    said: list[str] = []
    outcome = retrain(cfg, store=open_store(cfg.registry), labels=labels, say=said.append)
    left_out = [line for line in said if "left out of this retrain" in line]
    assert len(left_out) == 1 and "slices.team.max_gap.macro_f1 <= 0.5" in left_out[0], said
    assert "accuracy" not in left_out[0]
    assert not outcome.passed and outcome.registered_version is None and outcome.run is None
    assert "data gates failed on dataset v1" in outcome.reasons[0] and "leakage" in outcome.reasons[0]
    assert outcome.to_dict()["run_dir"] is None


def test_a_scored_pair_models_new_pairs_get_a_score_so_the_version_stays_one_kind(tmp_path):
    """A CoSENT embedding model's feedback (an accepted document) becomes a pair with the parent's top score, so the
    next version's rows are all scored and none is quarantined for a missing score."""
    from tunesmith.data.load import load_table
    from tunesmith.families import get
    from tunesmith.families.embedding.rows import check_pair_rows

    rows = [{"a": f"text {i} about topic {i % 7}", "b": f"other {i} about topic {i % 7}", "s": float(i % 5)}
            for i in range(60)]
    pd.DataFrame(rows).to_json(tmp_path / "sts.jsonl", orient="records", lines=True)
    cfg = config_from_dict({"name": "sts", "task": "embedding", "data": {
        "path": str(tmp_path / "sts.jsonl"), "query_column": "a", "positive_column": "b", "score_column": "s",
        "checks": {"pii": {"presidio": "off"}}}, "retrain": {"datasets_dir": str(tmp_path / "ds")}})
    accepted = {"row": {"query": "how do I reset it", "positive": "hold the reset button"}, "source": "feedback",
                "labeled_by": "user", "labeled_at": "2026-12-01T10:00:00", "request_id": "r1"}
    extra = [{**accepted, "row": {"query": f"question {i}", "positive": f"answer {i}"},
              "labeled_at": f"2026-12-01T10:0{i}:00", "request_id": f"r{i + 2}"} for i in range(5)]
    version = build_dataset_version(cfg, "sts", [accepted, *extra], parent=None)
    train = [json.loads(line) for line in version.file("train").read_text().splitlines()]
    new = [r for r in train if r["query"] in {"how do I reset it", *(f"question {i}" for i in range(5))}]
    assert new and all(r["score"] == 4.0 for r in new)  # the parent's top score
    reader = cfg.model_copy(deep=True)
    reader.data.query_column, reader.data.positive_column, reader.data.score_column = "query", "positive", "score"
    checked = check_pair_rows(load_table("data.train", version.file("train")), reader.data)
    assert not checked.bad and len(checked.rows) == len(train)
    assert get("embedding").dataset.conform([{"query": "q", "positive": "p"}], [{"query": "a", "positive": "b"}]) == [
        {"query": "q", "positive": "p"}]  # a retrieval model's pairs stay unscored


def test_monitor_act_prints_the_recent_slice_verdict_with_its_ci():
    from tunesmith.cli.output import console, print_monitor

    recent = {"rows": 48, "passed": True, "metrics": {"f1": 0.984, "champion.f1": 0.26, "vs_champion.f1": 0.724,
                                                      "vs_champion_ci_low.f1": 0.678, "vs_champion_ci_high.f1": 0.77}}
    report = {"task": "token-classification", "drift": {"status": "n/a", "note": "no reference"},
              "live": {"kind": "quality", "status": "n/a", "note": "none", "metrics": {}, "targets": {},
                       "versions": {}, "bucket": "1h", "min_labels": 20},
              "triggers": {"fired": [{"name": "drift"}], "action": "retrained",
                           "retrain": {"dataset_version": 1, "passed": True, "registered_version": 2, "reasons": [],
                                       "recent": recent}},
              "files": {"html": "r.html", "json": "r.json", "prometheus": "m.prom"}}
    with console.capture() as captured:
        print_monitor(report)
    text = " ".join(captured.get().split())
    assert "recent slice: 48 rows, f1 challenger 0.984 vs champion 0.260 (delta +0.724, 95% CI [+0.678, +0.770]): " \
           "passed" in text, text

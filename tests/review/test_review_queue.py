"""The review queue: enqueue (idempotent), active-learning order, labels, undo, resolution, agreement, export."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from tests.review.seed import MODEL, seed
from typer.testing import CliRunner

from tunesmith.cli import app as cli_app
from tunesmith.config import ConfigError, ReviewStrategy, config_from_dict
from tunesmith.review import store
from tunesmith.review.agreement import agreement
from tunesmith.review.enqueue import ReviewInputError, enqueue, reorder
from tunesmith.review.ordering import mmr_order, tfidf_embed, uncertainty
from tunesmith.review.store import Action, Source


@pytest.fixture()
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    issues = seed(url, tmp_path)
    yield url, issues
    store.dispose(url)


def test_enqueue_finds_each_source_once_and_is_idempotent(db):
    url, issues = db
    first = enqueue(url, MODEL, threshold=0.6, label_issues_file=issues, embed=tfidf_embed)
    assert first["low_confidence"] == 3 and first["shadow_disagreement"] == 1 and first["label_issue"] == 2
    assert first["not_reviewable"] == 1  # the /v1/score row: counted, not silently dropped
    assert first["added"] == 6 and first["pending"] == 6
    queued = store.list_items(url, MODEL)
    by_source = {s.value: sorted(i["text"] for i in queued if i["source"] == s.value) for s in Source}
    assert by_source["shadow_disagreement"] == ["I walked out after an hour"]
    assert "a masterpiece of modern cinema" not in {i["text"] for i in queued}  # confident: no review
    shadow = next(i for i in queued if i["source"] == "shadow_disagreement")
    assert shadow["guess"] == "neg" and shadow["context"]["shadow_label"] == "neu" and shadow["request_id"] == "r4"
    issue = next(i for i in queued if i["text"] == "worst film of the year")
    assert issue["guess"] == "neg" and issue["context"]["given"] == "pos" and issue["context"]["row"] == "train.jsonl:7"

    again = enqueue(url, MODEL, threshold=0.6, label_issues_file=issues, embed=tfidf_embed)
    assert again["added"] == 0 and again["already_queued"] == 6
    assert len(store.list_items(url, MODEL)) == 6
    # a stricter threshold on a later run adds nothing it already has and nothing above the new threshold
    only_shadow = enqueue(url, MODEL, threshold=0.1, sources=[Source.SHADOW_DISAGREEMENT])
    assert only_shadow["added"] == 0 and "low_confidence" not in only_shadow


def test_bad_label_issues_line_names_file_and_line(db, tmp_path):
    url, _ = db
    bad = tmp_path / "flags.jsonl"
    bad.write_text('{"text": "ok", "given": "pos", "suggested": "neg"}\n{"text": "no labels"}\n', encoding="utf-8")
    with pytest.raises(ReviewInputError, match=r"flags.jsonl:2: not a label-issue record"):
        enqueue(url, MODEL, sources=[Source.LABEL_ISSUE], label_issues_file=bad)


def test_uncertainty_strategies():
    even, sure = {"a": 0.5, "b": 0.45, "c": 0.05}, {"a": 0.9, "b": 0.06, "c": 0.04}
    for strategy in ReviewStrategy:
        assert uncertainty(even, 0.5, strategy) > uncertainty(sure, 0.9, strategy)
    assert uncertainty(even, 0.5, ReviewStrategy.MARGIN) == pytest.approx(0.95)
    assert uncertainty({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, None, ReviewStrategy.ENTROPY) == pytest.approx(1.0)
    assert uncertainty(None, 0.8, ReviewStrategy.MARGIN) == pytest.approx(0.2)  # no scores: 1 - confidence


def test_mmr_spreads_near_duplicates_apart():
    u = np.array([0.90, 0.89, 0.88, 0.50])
    emb = np.array([[1.0, 0.0], [0.99, 0.01], [0.98, 0.02], [0.0, 1.0]])  # three near-copies and one different
    assert mmr_order(u, None, diversity=0.3) == [0, 1, 2, 3]  # uncertainty alone: copies first
    order = mmr_order(u, emb, diversity=0.5)
    assert order[0] == 0 and order[1] == 3  # the different item comes before the second near-copy
    assert sorted(order) == [0, 1, 2, 3]


def test_queue_order_uses_uncertainty_and_diversity(db):
    url, issues = db
    enqueue(url, MODEL, threshold=0.6, label_issues_file=issues, embed=None)
    texts = [i["text"] for i in store.list_items(url, MODEL)]
    # margin: r1 (0.413 vs 0.41) > its near-copy r6 > the flagged row the probe doubts most (p(given)=0.04)
    assert texts[:3] == ["the plot was fine I guess", "the plot was fine I guess, really", "worst film of the year"]
    assert texts[-1] == "I walked out after an hour"  # a confident champion, lifted only by the disagreement
    assert reorder(url, MODEL, diversity=0.5, embed=tfidf_embed) == 6  # re-rank the pending items
    texts = [i["text"] for i in store.list_items(url, MODEL)]
    # with diversity the near-copy of the first item drops behind a different text
    assert texts[0] == "the plot was fine I guess" and texts[1] == "worst film of the year"


def test_labels_undo_resolution_and_durability(db):
    url, issues = db
    enqueue(url, MODEL, label_issues_file=issues, embed=None)
    first = store.next_item(url, MODEL, reviewer="ana")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    store.add_label(url, first["id"], label=first["guess"], reviewer="ana", action=Action.ACCEPT, at=t0)
    second = store.next_item(url, MODEL, reviewer="ana")
    assert second["id"] != first["id"]
    store.add_label(url, second["id"], label="neu", reviewer="ana", action=Action.RELABEL, at=t0 + timedelta(1))
    assert store.undo_last(url, MODEL, reviewer="ana") == second["id"]
    assert store.next_item(url, MODEL, reviewer="ana")["id"] == second["id"]  # undone: shown again
    store.add_label(url, second["id"], label="pos", reviewer="ana", action=Action.RELABEL, at=t0 + timedelta(2))
    # second reviewer: agrees on item 1 later, third reviewer disagrees -> majority keeps ana's label
    store.add_label(url, first["id"], label=first["guess"], reviewer="ben", action=Action.ACCEPT, at=t0 + timedelta(3))
    store.add_label(url, first["id"], label="other", reviewer="cy", action=Action.RELABEL, at=t0 + timedelta(4))
    # a tie on item 2 (pos vs neg): the label given last wins
    store.add_label(url, second["id"], label="neg", reviewer="ben", action=Action.RELABEL, at=t0 + timedelta(5))
    skip_item = store.next_item(url, MODEL, reviewer="ana")
    store.add_label(url, skip_item["id"], label=None, reviewer="ana", action=Action.SKIP)
    with pytest.raises(ValueError, match="reviewer"):
        store.add_label(url, first["id"], label="pos", reviewer="  ", action=Action.RELABEL)

    store.dispose(url)  # a fresh engine, as after a restart: everything committed is there
    rows = {r["item_id"]: r for r in store.reviewed_labels(url, MODEL)}
    assert set(rows) == {first["id"], second["id"]}  # the skipped item has no label
    assert rows[first["id"]] == {"text": first["text"], "label": first["guess"], "source": "review",
                                 "labeled_by": "ben", "labeled_at": (t0 + timedelta(3)).isoformat(),
                                 "request_id": first["request_id"], "item_id": first["id"]}
    assert rows[second["id"]]["label"] == "neg" and rows[second["id"]]["labeled_by"] == "ben"
    assert store.progress(url, MODEL, reviewer="ana") == {"total": 6, "labeled": 3, "mine": 3}


def test_agreement_matches_sklearn_kappa(db):
    url, issues = db
    enqueue(url, MODEL, label_issues_file=issues, embed=None)
    items = store.list_items(url, MODEL)
    ana = ["pos", "neg", "neu", "pos", "neg"]
    ben = ["pos", "neg", "pos", "pos", "neu"]
    for it, a, b in zip(items, ana, ben, strict=False):
        store.add_label(url, it["id"], label=a, reviewer="ana", action=Action.RELABEL)
        store.add_label(url, it["id"], label=b, reviewer="ben", action=Action.RELABEL)
    store.add_label(url, items[5]["id"], label="pos", reviewer="ana", action=Action.RELABEL)  # only one reviewer
    report = agreement(url, MODEL)
    (pair,) = report["pairs"]
    assert pair["reviewers"] == ["ana", "ben"] and pair["items"] == 5 and pair["agree"] == 3
    assert pair["percent_agreement"] == pytest.approx(0.6)
    assert pair["kappa"] == pytest.approx(cohen_kappa_score(ana, ben))
    found = {d["item_id"]: d["labels"] for d in report["disagreements"]}  # by item id
    assert found == {items[2]["id"]: {"ana": "neu", "ben": "pos"}, items[4]["id"]: {"ana": "neg", "ben": "neu"}}


def test_cli_enqueue_and_export(db, tmp_path):
    url, issues = db
    runner = CliRunner()
    res = runner.invoke(cli_app, ["review", "enqueue", "--model", MODEL, "--db", url, "--label-issues", str(issues)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["added"] == 6
    item = store.next_item(url, MODEL, reviewer="ana")
    store.add_label(url, item["id"], label="neu", reviewer="ana", action=Action.RELABEL)
    out = tmp_path / "reviewed.jsonl"
    res = runner.invoke(cli_app, ["review", "export", "--model", MODEL, "--db", url, "-o", str(out)])
    assert res.exit_code == 0, res.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["label"] == "neu" and row["labeled_by"] == "ana" and row["source"] == "review"
    assert datetime.fromisoformat(row["labeled_at"]).tzinfo is not None
    missing = runner.invoke(cli_app, ["review", "enqueue", "--model", MODEL, "--db", url, "--label-issues",
                                      str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "nope.jsonl not found" in missing.output
    no_model = runner.invoke(cli_app, ["review", "export", "--db", url, "-o", str(out)])
    assert no_model.exit_code == 2 and "--model" in no_model.output


def test_review_config_block_checked_by_key_path():
    base = {"name": "m", "data": {"train": "t.jsonl"}}
    cfg = config_from_dict({**base, "review": {"confidence_threshold": 0.7, "strategy": "entropy"}})
    assert cfg.review.confidence_threshold == 0.7 and cfg.review.strategy is ReviewStrategy.ENTROPY
    assert [s.value for s in cfg.review.sources] == ["low_confidence", "shadow_disagreement", "label_issue",
                                                   "random_sample"] and cfg.review.random_share == 0.05
    with pytest.raises(ConfigError, match=r"review\.confidence_threshold"):
        config_from_dict({**base, "review": {"confidence_threshold": 1.5}})


def test_cli_enqueue_from_a_config_uses_the_base_encoder_and_newest_label_issues(tmp_path, tiny_model_dir):
    import yaml

    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    issues = seed(url, tmp_path)
    run = tmp_path / "runs" / MODEL / "20260101-000000"
    run.mkdir(parents=True)
    issues.rename(run / "label_issues.jsonl")  # where a validate/run with review_file: true leaves it
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "pos"}\n', encoding="utf-8")
    cfg = {"name": MODEL, "output_dir": str(tmp_path / "runs"), "data": {"train": "train.jsonl"},
           "model": {"base": tiny_model_dir}, "serving": {"predictions": {"url": url}},
           "review": {"embeddings": "base", "diversity": 0.5, "confidence_threshold": 0.5}}
    path = tmp_path / "tunesmith.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = CliRunner().invoke(cli_app, ["review", "enqueue", "-m", MODEL, "-c", str(path)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)  # stderr carries transformers' load bar
    assert report["label_issue"] == 2 and report["low_confidence"] == 2  # r3 (0.55) is above 0.5 now
    assert report["label_issues_file"].endswith("20260101-000000/label_issues.jsonl") and report["pending"] == 5
    assert len({i["priority"] for i in store.list_items(url, MODEL)}) == 5  # a total order was stored
    store.dispose(url)

"""The review queue for every family (`contracts.ReviewHooks`): each family's served answers are queued by its own
uncertainty, shown with its form, the reviewer's value is checked by the family's feedback check, becomes the
family's training row, and two reviewers' agreement is measured the family's way. Over HTTP, no browser."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from tests.review.family_seed import ML_LABELS, REVIEWED, SERVED, seed_family

from tunesmith.families import get
from tunesmith.review import store
from tunesmith.review.agreement import agreement
from tunesmith.review.enqueue import enqueue, sampled
from tunesmith.review.web import create_review_app
from tunesmith.review.widgets import FormError, markup_to_spans, spans_to_markup

KINDS = list(SERVED)


@pytest.fixture()
def url(tmp_path):
    u = f"sqlite:///{tmp_path / 'predictions.db'}"
    yield u
    store.dispose(u)


def _csrf(html: str) -> str:
    return re.search(r"name='csrf' value='([0-9a-f]+)'", html).group(1)


def _item_id(html: str) -> int:
    return int(html.split("data-item-id='")[1].split("'")[0])


@pytest.mark.parametrize("kind", KINDS)
def test_each_family_is_queued_by_its_uncertainty_reviewed_on_its_form_and_becomes_its_training_row(url, kind):
    model = seed_family(url, kind)
    report = enqueue(url, model, threshold=0.6, random_share=0.0, embed=None,
                     labels=ML_LABELS if kind == "multi-label" else None)  # the family is inferred from the log
    assert report["family"] == kind and report["added"] >= 1 and report.get("not_reviewable", 0) == 0, report
    queued = store.list_items(url, model)
    first_text, form, row = REVIEWED[kind]
    assert queued[0]["text"] == first_text, [q["text"] for q in queued]  # the most uncertain answer comes first
    assert queued[0]["context"]["widget"] == get(kind).review.widget

    client = TestClient(create_review_app(url, model, reviewer="ana"))
    page = client.get("/")
    assert page.status_code == 200 and f"data-widget='{get(kind).review.widget}'" in page.text
    assert "<script>" not in page.text.split("</header>")[1].split("<script nonce")[0]  # logged text is escaped
    item = _item_id(page.text)
    saved = client.post("/label", data={"item_id": item, "csrf": _csrf(page.text), **form})
    action = "accept" if kind == "embedding" else "relabel"  # picking the model's nearest document accepts it
    assert saved.status_code == 200 and f"saved {action}" in saved.text, saved.text[:300]
    reviewed = [r for r in store.reviewed_labels(url, model) if r.get("item_id") == item]
    assert len(reviewed) == 1 and reviewed[0]["row"] == row and reviewed[0]["source"] == "review"
    assert reviewed[0]["labeled_by"] == "ana"
    # `tunesmith retrain` takes the reviewed row as a new label of the next dataset version
    from tunesmith.retrain.dataset import collect_labels

    collected = collect_labels(None, url, model, sources={"review": store.reviewed_labels})
    assert [c["row"] for c in collected] == [row] and collected[0]["source"] == "review"


BAD = {
    "multi-label": ({"choice": "save", "label:refunds": "on"}, "'refunds' is not one of"),
    "regression": ({"choice": "save", "value": "lots"}, "must be a number"),
    "token-classification": ({"choice": "save", "markup": "[Ada](PER) met someone"}, "must stay the served text"),
    "reranking": ({"choice": "grade:-1"}, ">= 0"),
    "embedding": ({"choice": "save", "document": "  "}, "give {\"document\""),
    "causal-lm": ({"choice": "save", "correction": ""}, "correction: write the answer"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_value_the_family_does_not_take_is_refused_with_the_field_named(url, kind):
    model = seed_family(url, kind)
    enqueue(url, model, threshold=1.0, random_share=0.0, embed=None, task=kind,
            labels=ML_LABELS if kind == "multi-label" else None)
    client = TestClient(create_review_app(url, model, reviewer="ana"))
    page = client.get("/")
    form, message = BAD[kind]
    res = client.post("/label", data={"item_id": _item_id(page.text), "csrf": _csrf(page.text), **form})
    assert res.status_code == 422 and message in res.json()["error"]["message"], res.text
    assert store.label_rows(url, model) == []  # nothing stored


def test_chat_accept_reject_and_agreement_between_reviewers(url):
    model = seed_family(url, "causal-lm")
    enqueue(url, model, threshold=1.0, random_share=0.0, embed=None, task="causal-lm")
    items = store.list_items(url, model)
    assert items[0]["context"]["thumbs"] == "down" and items[0]["uncertainty"] == 1.0  # the thumbs-down first
    for reviewer, choices in (("ana", ("reject", "accept")), ("ben", ("reject", "reject"))):
        client = TestClient(create_review_app(url, model, reviewer=reviewer))
        for choice in choices:
            page = client.get("/")
            assert client.post("/label", data={"item_id": _item_id(page.text), "csrf": _csrf(page.text),
                                               "choice": choice}).status_code == 200
    rows = store.reviewed_labels(url, model)
    # a rejected answer without a rewrite trains nothing: it comes with the reason; the accepted one trains
    assert any("without a correction" in r.get("skip", "") for r in rows)
    report = agreement(url, model)
    pair = report["pairs"][0]
    assert pair["measure"] == "accept/reject agreement" and pair["mean_agreement"] == 0.5 and pair["kappa"] is None
    assert len(report["disagreements"]) == 1


def test_span_markup_round_trips_and_span_f1_agreement():
    text = "Ada Lovelace met Babbage"
    spans = [{"start": 0, "end": 12, "label": "PER"}, {"start": 17, "end": 24, "label": "PER"}]
    assert spans_to_markup(text, spans) == "[Ada Lovelace](PER) met [Babbage](PER)"
    assert markup_to_spans(spans_to_markup(text, spans), text) == spans
    with pytest.raises(FormError, match="must stay the served text"):
        markup_to_spans("[Ada Lovelace](PER) met Babbage!", text)
    agree = get("token-classification").review.agree
    assert agree(spans, spans[:1]) == pytest.approx(2 / 3) and agree([], []) == 1.0


def test_the_random_share_is_stable_and_about_its_size():
    picks = [sampled(f"r{i}", 0, 0.1) for i in range(4000)]
    assert 0.08 < sum(picks) / len(picks) < 0.12
    assert picks == [sampled(f"r{i}", 0, 0.1) for i in range(4000)]  # the same requests every run
    assert not any(sampled(f"r{i}", 0, 0.0) for i in range(100))


def test_a_random_share_queues_confident_answers_too(url):
    model = seed_family(url, "regression")
    confident_only = enqueue(url, model, threshold=0.0, random_share=1.0, embed=None, task="regression")
    assert confident_only["random_sample"] == 4 and {i["source"] for i in store.list_items(url, model)} == {
        "random_sample"}

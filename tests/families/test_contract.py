"""One contract suite over every registered family (the way scikit-learn's `check_estimator` runs over every
estimator): config defaults round-trip; good rows are used and a bad row is quarantined with file:line and its
reason; a tiny model trains through the real pipeline, its trainable parameters change and its frozen ones do not;
evaluation gives metrics, a baseline and CIs; the report renders; the family's route answers a request and refuses a
bad one; `model/tunesmith.json` says what the model is; the registered version is an MLflow Model whose pyfunc answers
as the route does.

A toy family registered here (tests/families/toy_family.py, not shipped) passes it too, with no stage file changed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file
from tests.compare import close
from tests.families import toy_family
from tests.families.specs import FAST, SPECS
from tests.mlflow_env import mlflow_uris

from tunesmith import families
from tunesmith.config import config_from_dict
from tunesmith.contracts import LABEL_LIVE, Task
from tunesmith.data import prepare_data
from tunesmith.model_card import CARD_FILE, read_model_card
from tunesmith.pipeline import run
from tunesmith.registry import RegistryError, open_store, promote
from tunesmith.registry.lineage import REQUIRED_KEYS
from tunesmith.serving import create_app, detect_family

BUILTIN = list(families.BUILTIN)
KINDS = [*BUILTIN, toy_family.KIND]


@pytest.fixture(scope="module", autouse=True)
def toy_registered():
    families.register(toy_family.TOY)
    yield
    families.unregister(toy_family.KIND)


def test_every_builtin_family_is_registered_and_the_toy_joins_them():
    assert families.kinds() == KINDS  # the built-ins in their order, then the toy
    assert families.get("toy-keywords") is toy_family.TOY
    with pytest.raises(ValueError, match="already registered"):
        families.register(toy_family.TOY)
    assert "toy" in families.sections() and families.routes()["/v1/toy-keywords"].path == "/v1/toy-keywords"


PROTOCOL = sorted({*Task.__annotations__, *(n for n, v in vars(Task).items() if callable(v) and not n.startswith("_"))})


@pytest.mark.parametrize("kind", KINDS)
def test_the_family_provides_every_member_of_the_protocol(kind):
    task = families.get(kind)
    missing = [name for name in PROTOCOL if not hasattr(task, name)]
    assert not missing, missing
    hooks = [n for n in PROTOCOL if callable(getattr(Task, n, None))]
    assert hooks and all(callable(getattr(task, n)) for n in hooks)


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir, tiny_chat_model_dir, tiny_vit_dir):
    """kind -> (config, "file:line" of its bad row): the family's data and a config that trains in seconds."""
    made = {}

    def build(kind: str):
        if kind not in made:
            spec = SPECS[kind]
            folder = tmp_path_factory.mktemp(kind)
            data, bad_row = spec.write_data(folder)
            base = {"bert": tiny_model_dir, "llama": tiny_chat_model_dir, "vit": tiny_vit_dir}.get(spec.base)
            base = base or str(toy_family.write_base(folder / "toy-base"))
            method = {"kind": "head"} if spec.base == "toy" else {"kind": "freeze", "freeze": {"layers": 1}}
            raw = {"name": f"c-{kind}", "task": kind, "seed": 0, "output_dir": str(folder / "runs"),
                   "data": {"path": str(folder / data), "checks": {"pii": {"presidio": "off"}}},
                   "model": {"base": base, "max_length": 32 if spec.base != "llama" else 64}, "method": method,
                   "training": dict(FAST), "evaluation": {"bootstrap": {"samples": 100}}, "gates": [],
                   "registry": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"}}
            for key, value in spec.extra.items():
                raw[key] = {**raw.get(key, {}), **value} if key != "data" else {**raw["data"], **value}
            made[kind] = (config_from_dict(raw), bad_row)
        return made[kind]

    return build


@pytest.fixture(scope="module")
def trained(project):
    """kind -> the outcome of `tunesmith run` on the family's project (each family trains once per module)."""
    done = {}

    def train(kind: str):
        if kind not in done:
            cfg, _ = project(kind)
            done[kind] = run(cfg)
        return done[kind]

    return train


@pytest.mark.parametrize("kind", KINDS)
def test_config_defaults_round_trip(kind, project):
    cfg, _ = project(kind)
    task = families.get(kind)
    assert cfg.task == kind and cfg.training.metric in task.train_metrics
    if task.section:
        assert isinstance(getattr(cfg, task.section), task.section_model)  # the family's section, defaults filled
    again = config_from_dict(cfg.model_dump(mode="json"))
    assert again.model_dump(mode="json") == cfg.model_dump(mode="json") and again.fingerprint() == cfg.fingerprint()


@pytest.mark.parametrize("kind", KINDS)
def test_good_rows_are_used_and_a_bad_row_is_quarantined_with_its_line(kind, project, tmp_path):
    cfg, bad_row = project(kind)
    bundle = prepare_data(cfg, tmp_path)
    assert len(bundle.train) and len(bundle.test) and bundle.report.quarantined >= 1
    (row,) = [json.loads(line) for line in (tmp_path / "quarantine.jsonl").read_text().splitlines()
              if json.loads(line)["source"].endswith(bad_row)]
    assert row["reason"] == SPECS[kind].bad_reason and row["detail"]
    assert set(families.get(kind).bundle_columns) <= set(bundle.train.columns)


@pytest.mark.parametrize("kind", KINDS)
def test_a_tiny_model_trains_its_trainable_parameters_change_and_frozen_ones_do_not(kind, project, trained):
    cfg, _ = project(kind)
    outcome = trained(kind)
    base = _weights(cfg.model.base)
    tuned = _weights(outcome.run_dir / "model")
    spec = SPECS[kind]
    pairs = [(key, _match(key, base)) for key in tuned]
    pairs = [(key, b) for key, b in pairs if b is not None]
    frozen = [(key, b) for key, b in pairs if b.startswith(spec.frozen)]
    trainable = [(key, b) for key, b in pairs if spec.trained in b]
    assert frozen and trainable, (sorted(tuned)[:8], sorted(base)[:8])
    assert all(torch.equal(tuned[key], base[b]) for key, b in frozen), "a frozen parameter changed"
    assert any(not torch.equal(tuned[key], base[b]) for key, b in trainable), "no trainable parameter changed"


@pytest.mark.parametrize("kind", KINDS)
def test_evaluation_gives_metrics_a_baseline_and_confidence_intervals(kind, trained):
    report = trained(kind).eval_report
    flat, m = report.flat_metrics(), report.primary_metric
    for key in (m, f"baseline.{m}", f"uplift.{m}", f"uplift_ci_low.{m}", f"uplift_ci_high.{m}"):
        assert key in flat, key
    assert flat[f"uplift_ci_low.{m}"] <= flat[f"uplift.{m}"] <= flat[f"uplift_ci_high.{m}"]
    assert report.champion_status == "none" and not report.has_champion


@pytest.mark.parametrize("kind", KINDS)
def test_the_report_renders(kind, trained):
    outcome = trained(kind)
    page = (outcome.run_dir / "report.html").read_text()
    first_section = outcome.eval_report.html_sections()[0][0]
    assert "<h2>Gate decision</h2>" in page and first_section in page and "<script" not in page
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert {"tuned", "baseline", "uplift", "gates", "flat", "lineage"} <= set(metrics)


@pytest.mark.parametrize("kind", KINDS)
def test_the_model_says_what_it_is(kind, trained, tmp_path):
    model_dir = trained(kind).run_dir / "model"
    card = read_model_card(model_dir)
    assert card["family"] == kind and card["versions"]["torch"] == torch.__version__
    assert detect_family(model_dir) == kind
    if kind in BUILTIN:  # a dir registered before tunesmith.json existed: the family's own rule recognizes it
        legacy = tmp_path / "legacy"
        shutil.copytree(model_dir, legacy)
        (legacy / CARD_FILE).unlink()
        assert detect_family(legacy) == kind


@pytest.mark.parametrize("kind", KINDS)
def test_the_family_route_answers_and_refuses_a_bad_request(kind, project, trained):
    cfg, _ = project(kind)
    outcome = trained(kind)
    assert outcome.registered_version is not None
    store = open_store(cfg.registry)
    promote(cfg.name, store=store)
    spec = SPECS[kind]
    app = create_app(cfg.name, settings=cfg.serving, store=store)
    with TestClient(app) as client:
        good = client.post(spec.route, json=spec.good)
        assert good.status_code == 200, good.text
        body = good.json()
        assert body["model"] == cfg.name and spec.answer_key in body
        bad = client.post(spec.route, json=spec.bad)
        assert 400 <= bad.status_code < 500 and bad.json()["error"]["message"], bad.text
        other = next(p for p in families.routes() if p not in {r.path for r in families.get(kind).routes})
        if other != "/v1/completions":  # a route of another family: 400 naming the routes this model answers
            assert client.post(other, json=SPECS["classification"].good).status_code in (400, 422)


@pytest.mark.parametrize("kind", KINDS)
def test_the_registered_version_is_an_mlflow_model_whose_pyfunc_answers_as_the_route(kind, project, trained):
    import mlflow

    cfg, _ = project(kind)
    outcome = trained(kind)
    spec, described = SPECS[kind], families.get(kind).mlflow
    store = open_store(cfg.registry)
    number = outcome.registered_version.version
    uri = f"models:/{cfg.name}/{number}"
    with mlflow_uris(store):
        info = mlflow.models.get_model_info(uri)
        model = mlflow.pyfunc.load_model(uri)
        example = model.input_example
        rows = model.predict(example, params=spec.pyfunc_params or None)
        native = _native_outputs(described.flavor, uri, example)
    assert set(info.flavors) == {"python_function"} | ({described.flavor} - {None})
    assert [c.name for c in info.signature.inputs.inputs] == [c["name"] for c in described.inputs]
    assert info.saved_input_example_info and len(rows) == len(example)
    version = store.client.get_model_version(cfg.name, str(number))
    assert version.run_id == outcome.mlflow_run_id and set(REQUIRED_KEYS) <= set(version.tags)  # lineage stays
    if native is not None:  # the native flavor loads and answers each row too (embeddings: the same vectors)
        assert len(native) == len(rows)
        if described.flavor == "sentence_transformers":
            assert close([list(map(float, v)) for v in native], rows, tol=1e-4)
    try:
        promote(cfg.name, store=store)
    except RegistryError:
        pass  # promoted already by the route test
    with TestClient(create_app(cfg.name, settings=cfg.serving, store=store)) as client:
        answer = client.post(spec.route, json=spec.route_request(example.to_dict("list")))
    assert answer.status_code == 200, answer.text
    assert close(spec.route_answers(answer.json()), [spec.pyfunc_view(r) for r in rows])


@pytest.mark.parametrize("kind", KINDS)
def test_feedback_on_served_answers_takes_the_family_shape_and_monitor_scores_and_drift_tests_them(kind, project, trained, tmp_path):
    from tunesmith.monitoring.feedback import feedback_rows, read_feedback
    from tunesmith.monitoring.monitor import monitor
    from tunesmith.monitoring.predictions import PredictionLog
    from tunesmith.retrain import retrain

    cfg, _ = project(kind)
    trained(kind)
    spec, hooks = SPECS[kind], families.get(kind).feedback
    store = open_store(cfg.registry)
    try:
        promote(cfg.name, store=store)
    except RegistryError:
        pass  # promoted already
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    app = create_app(cfg.name, settings=cfg.serving, store=store, prediction_log=PredictionLog(url))
    with TestClient(app) as client:
        answer = client.post(spec.route, json=spec.good)
        assert answer.status_code == 200, answer.text
        for _ in range(4):  # a window of at least monitoring.drift.min_rows (5) logged answers
            assert client.post(spec.route, json=spec.good).status_code == 200
        # a chat completion's own `id` names its request too (what a product on the openai client holds)
        rid = answer.json().get("id") or answer.json()["request_id"]
        if spec.feedback is None:
            refused = client.post("/v1/feedback", json={"request_id": rid, "value": 1})
            assert refused.status_code == 400 and "takes no feedback" in refused.json()["error"]["message"]
            assert hooks is None and families.get(kind).drift is None
            return
        index, good, bad = spec.feedback
        stored = client.post("/v1/feedback", json={"request_id": rid, "index": index, "value": good,
                                                    "labeled_by": "qa"})
        assert stored.status_code == 200, stored.text
        refused = client.post("/v1/feedback", json={"request_id": rid, "index": index, "value": bad})
        assert refused.status_code == 422 and refused.json()["error"]["message"], refused.text
        unknown = client.post("/v1/feedback", json={"request_id": "no-such-request", "value": good})
        assert unknown.status_code == 404
    [row] = read_feedback(url, cfg.name)
    assert json.loads(row["value"]) == stored.json()["value"] and row["label"] == stored.json()["label"]
    assert row["labeled_by"] == "qa" and row["request_id"] == answer.json()["request_id"]

    # the feedback becomes a training row the family's own reader and checks accept (the next dataset version's)
    [trainable], skipped = feedback_rows(url, cfg.name, hooks)
    assert skipped == [] and trainable["labeled_by"] == "qa"
    (tmp_path / "next.jsonl").write_text(json.dumps(trainable["row"]) + "\n")
    reader = cfg.model_copy(deep=True)
    reader.data.label_column = "label"  # dataset versions use the default column names
    table = families.get(kind).read_table("train", tmp_path / "next.jsonl", reader)
    checked = families.get(kind).check_rows(table, reader)
    assert len(checked.rows) == 1 and not checked.bad, checked.bad

    # `tunesmith monitor` scores the served answer against it: the family's live quality (or says it has none yet)
    watch = cfg.model_copy(deep=True)
    watch.serving.predictions.url, watch.monitoring.report_dir = url, str(tmp_path / "monitor")
    watch.monitoring.slo.min_labels, watch.monitoring.drift.min_rows = 1, 5
    report = monitor(watch, store=store)
    live, drift = report["live"], report["drift"]
    # ... and tests the window for drift against the reference its run stored: inputs and the family's outputs
    assert drift["status"] in ("ok", "drift") and drift["rows"] >= 5, drift
    assert {"text_length", "token_distribution", spec.drift_test} <= set(drift["tests"]), drift["tests"]
    if hooks.live == LABEL_LIVE:  # a classifier: live accuracy, macro-F1 and burn rate
        assert live["kind"] == "accuracy" and [v["n"] for v in live["versions"].values()] == [1]
    elif hooks.live is None:  # not measured yet, and the report says so
        assert live["kind"] == "quality" and live["status"] == "n/a" and live["note"]
    else:
        [scored] = live["versions"].values()
        assert live["kind"] == "quality" and scored["n"] == 1 and scored[hooks.live_metrics[0][0]] is not None, live
    assert (tmp_path / "monitor" / cfg.name / "report.html").is_file()

    # `tunesmith retrain` builds the next dataset version in the family's shape and trains and gates a challenger
    watch.retrain.datasets_dir = str(tmp_path / "datasets")
    watch.retrain.min_recent_rows, watch.retrain.recent_holdout = 1, 0.9  # the one new row: the recent slice
    outcome = retrain(watch, store=store)
    version = outcome.dataset
    assert version.manifest["family"] == kind and version.manifest["new_labels"] == 1
    written = [json.loads(line) for s in ("train", "recent") for line in version.file(s).read_text().splitlines()]
    assert any({k: v for k, v in r.items() if k not in ("labeled_at", "source")} == trainable["row"] for r in written)
    assert outcome.run is not None and (outcome.run.run_dir / "metrics.json").is_file()
    assert outcome.recent["rows"] == version.manifest["rows"]["recent"], outcome.recent
    if outcome.recent["rows"]:  # judged by the family's own evaluation against the champion, gated (or says why not)
        assert "decision" in outcome.recent or "cannot be evaluated" in outcome.recent["note"], outcome.recent
    if not outcome.recent.get("passed"):
        assert any("recent-slice gates failed" in r for r in outcome.reasons) and outcome.registered_version is None

    # the review queue takes the family's served answers: its form, and a reviewed answer becomes a training row
    _review_served_answers(kind, cfg, url, reader, tmp_path, good)


def _review_served_answers(kind, cfg, url, reader, tmp_path, fallback) -> None:
    from tunesmith.review import store as review_store
    from tunesmith.review.enqueue import enqueue

    hooks = families.get(kind).review
    if hooks is None:
        return
    report = enqueue(url, cfg.name, threshold=1.0, random_share=1.0, embed=None, task=kind)
    items = review_store.list_items(url, cfg.name)
    assert report["added"] == len(items) >= 1 and report.get("not_reviewable", 0) == 0, report
    item = items[0]
    if hooks.items is None:  # a classifier's label item
        assert item["guess"] and item["guess"] in (item["scores"] or {}), item
        value, label = item["guess"], item["guess"]
    else:
        ctx = item["context"]
        assert ctx["widget"] == hooks.widget and ctx["family"] == kind and 0 <= item["uncertainty"] <= 1
        feedback = families.get(kind).feedback
        value = ctx["guess"] if ctx["guess"] is not None else fallback  # accept the model's answer where it has one
        value = feedback.check(value, None, ctx["input"])
        try:
            feedback.to_row(ctx["input"], ctx["output"], value)
        except ValueError:  # a tiny model's answer that trains nothing (a blank chat answer): the reviewer's value
            value = feedback.check(fallback, None, ctx["input"])
        label = str(feedback.summary(value))
    review_store.add_label(url, item["id"], label=label, value=None if hooks.items is None else value,
                           reviewer="qa", action="accept")
    [reviewed] = review_store.reviewed_labels(url, cfg.name)
    row = reviewed.get("row") or {"text": reviewed["text"], "label": reviewed["label"]}
    (tmp_path / "reviewed.jsonl").write_text(json.dumps(row) + "\n")
    table = families.get(kind).read_table("train", tmp_path / "reviewed.jsonl", reader)
    checked = families.get(kind).check_rows(table, reader)
    assert len(checked.rows) == 1 and not checked.bad, (row, checked.bad)
    review_store.dispose(url)


def _native_outputs(flavor: str | None, uri: str, example) -> list | None:
    import mlflow

    if flavor == "sentence_transformers":
        return list(mlflow.sentence_transformers.load_model(uri).encode(list(example["text"])))
    if flavor == "transformers":
        pipe = mlflow.transformers.load_model(uri)
        if "text" in example:
            return pipe(list(example["text"]))
        if "query" in example:  # a cross-encoder as a text-classification pipeline over (query, document) pairs
            return pipe([{"text": q, "text_pair": d} for q, d in zip(example["query"], example["document"], strict=True)])
        prompts = [pipe.tokenizer.apply_chat_template(list(m), tokenize=False, add_generation_prompt=True)
                   for m in example["messages"]]
        return pipe(prompts, max_new_tokens=2)
    return None


def _weights(path) -> dict[str, torch.Tensor]:
    out = {}
    for file in sorted(Path(path).rglob("*.safetensors")):
        out.update(load_file(str(file)))
    return out


def _match(key: str, base: dict) -> str | None:
    """The base parameter a tuned one came from: the longest base name the tuned name ends with."""
    found = [b for b in base if key == b or key.endswith("." + b)]
    return max(found, key=len) if found else None

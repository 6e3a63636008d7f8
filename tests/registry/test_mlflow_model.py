"""A registered version is an MLflow Model: what is logged (MLmodel, signature, example, tokenizer component, no
weight copies), versions in the layout before MLmodel existed and versions registered by plain MLflow still serve,
and nothing in an MLmodel makes MLflow or tunesmith run code or read outside the version."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from tests import model_dirs
from tests.mlflow_env import mlflow_uris

from tunesmith.config import config_from_dict
from tunesmith.registry import log_run, model_dir_for, promote, register_version
from tunesmith.registry.mlflow_model import MLMODEL, ST_DATA, prepare, weights_dir
from tunesmith.serving import create_app
from tunesmith.serving.pyfunc import ROWS_PER_CALL, TunesmithModel


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, tiny_model_dir) -> Path:
    return model_dirs.classifier(tmp_path_factory.mktemp("classifier") / "model", tiny_model_dir)


@pytest.fixture(scope="module")
def embedder_dir(tmp_path_factory, tiny_model_dir) -> Path:
    return model_dirs.embedder(tmp_path_factory.mktemp("embedder") / "model", tiny_model_dir)


def _cfg(tmp_path, name="sentiment"):
    return config_from_dict({"name": name, "data": {"path": str(tmp_path / "reviews.jsonl")}})


def _artifacts(store, run_id: str, path: str = "model") -> list[str]:
    out = []
    for info in store.client.list_artifacts(run_id, path):
        out += _artifacts(store, run_id, info.path) if info.is_dir else [info.path]
    return out


def test_a_logged_classifier_is_an_mlflow_model_with_its_files_at_the_root_and_no_weight_copy(
        store, tmp_path, classifier_dir):
    run_id = log_run(_cfg(tmp_path), run_dir=tmp_path / "run", model_dir=classifier_dir, store=store)
    files = _artifacts(store, run_id)
    assert f"model/{MLMODEL}" in files and "model/model.safetensors" in files
    assert [f for f in files if f.endswith(".safetensors")] == ["model/model.safetensors"]  # one copy of the weights
    assert {"model/components/tokenizer/tokenizer.json", "model/input_example.json", "model/requirements.txt",
            "model/python_env.yaml", "model/serving_input_example.json"} <= set(files)
    local = Path(store.client.download_artifacts(run_id, "model", str(tmp_path / "dl")))
    mlmodel = yaml.safe_load((local / MLMODEL).read_text())
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "tunesmith.serving.pyfunc"
    assert mlmodel["flavors"]["transformers"]["model_binary"] == "."
    assert json.loads(mlmodel["signature"]["inputs"]) == [{"type": "string", "name": "text", "required": True}]
    requirements = (local / "requirements.txt").read_text().split()
    assert any(r.startswith("torch==") and "+" not in r for r in requirements)  # installable from PyPI
    assert weights_dir(local) == local


def test_a_version_in_the_layout_before_mlmodel_existed_still_serves(store, tmp_path, classifier_dir):
    client = store.client
    experiment = client.create_experiment("old-layout")
    run = client.create_run(experiment)
    for path in sorted(classifier_dir.iterdir()):  # plain files under model/, as versions were logged before
        if path.is_file():
            client.log_artifact(run.info.run_id, str(path), artifact_path="model")
    client.set_terminated(run.info.run_id, "FINISHED")
    register_version("sentiment", run_id=run.info.run_id, store=store)
    promote("sentiment", store=store)
    served_dir = model_dir_for("sentiment", store=store)
    assert not (served_dir / MLMODEL).exists() and (served_dir / "model.safetensors").is_file()
    with TestClient(create_app("sentiment", settings=_cfg(tmp_path).serving, store=store)) as http:
        answer = http.post("/v1/classify", json={"input": ["great film"]})
    assert answer.status_code == 200 and answer.json()["results"][0]["label"] in {"neg", "pos"}


def test_versions_registered_by_plain_mlflow_in_this_layout_serve_in_tunesmith(
        store, tmp_path, classifier_dir, embedder_dir):
    import mlflow

    cls_run = log_run(_cfg(tmp_path), run_dir=tmp_path / "cls", model_dir=classifier_dir, store=store)
    emb_run = log_run(_cfg(tmp_path, "faq"), run_dir=tmp_path / "emb", model_dir=embedder_dir, store=store)
    assert f"model/{ST_DATA}/model.safetensors" in _artifacts(store, emb_run)  # where the flavor reads it
    with mlflow_uris(store):  # another team's script: no tunesmith tags, no lineage
        for run_id, name in ((cls_run, "elsewhere-cls"), (emb_run, "elsewhere-emb")):
            version = mlflow.register_model(f"runs:/{run_id}/model", name)
            store.client.set_registered_model_alias(name, "champion", version.version)
        vectors = mlflow.pyfunc.load_model("models:/elsewhere-emb@champion").predict(pd.DataFrame({"text": ["great film"]}))
    assert (model_dir_for("elsewhere-emb", store=store) / "modules.json").is_file()  # the data folder, resolved
    settings = _cfg(tmp_path).serving
    with TestClient(create_app("elsewhere-cls", settings=settings, store=store)) as http:
        assert http.post("/v1/classify", json={"input": ["great film"]}).status_code == 200
    with TestClient(create_app("elsewhere-emb", settings=settings, store=store)) as http:
        answer = http.post("/v1/embeddings", json={"input": ["great film"]})
    assert answer.status_code == 200
    assert answer.json()["data"][0]["embedding"] == pytest.approx(vectors[0], abs=1e-5)


def test_weights_dir_never_leaves_the_version(tmp_path):
    version = tmp_path / "v1"
    (version / "inner").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for data, expected in (("../elsewhere", version), ("/etc", version), ("missing", version), (".", version),
                           ("inner", (version / "inner").resolve())):
        (version / MLMODEL).write_text(yaml.safe_dump({"flavors": {"python_function": {"data": data}}}))
        assert weights_dir(version) == expected, data
    (version / MLMODEL).write_text(": not yaml: [")
    assert weights_dir(version) == version


def test_no_native_flavor_is_written_that_would_make_mlflow_trust_remote_code(tmp_path, classifier_dir, embedder_dir):
    import shutil

    def flavors_of(src: Path, edit) -> tuple[str, ...]:
        copy = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(src, copy)
        edit(copy)
        staging = copy.with_name(copy.name + "-mlmodel")
        staging.mkdir()
        layout = prepare(copy, staging)
        return layout.flavors, layout.data, yaml.safe_load((staging / MLMODEL).read_text())

    def set_config(**changes):
        def edit(path: Path):
            config = json.loads((path / "config.json").read_text())
            (path / "config.json").write_text(json.dumps({**config, **changes}))
        return edit

    assert flavors_of(classifier_dir, set_config(auto_map={"AutoModel": "evil--m.M"}))[0] == ("python_function",)
    assert flavors_of(classifier_dir, set_config(architectures=["EvilForSequenceClassification"]))[0] == (
        "python_function",)

    def odd_tokenizer(path: Path):
        conf = json.loads((path / "tokenizer_config.json").read_text())
        (path / "tokenizer_config.json").write_text(json.dumps({**conf, "tokenizer_class": "EvilTokenizer"}))
    flavors, _, mlmodel = flavors_of(classifier_dir, odd_tokenizer)
    assert "transformers" in flavors and mlmodel["flavors"]["transformers"]["tokenizer_type"] == "AutoTokenizer"

    def custom_module(path: Path):
        modules = json.loads((path / "modules.json").read_text())
        modules[-1]["type"] = "evil_package.Module"
        (path / "modules.json").write_text(json.dumps(modules))
    flavors, data, _ = flavors_of(embedder_dir, custom_module)
    assert flavors == ("python_function",) and data == "."
    assert prepare(tmp_path / "no-card-here", tmp_path) is None  # no family card: plain files, as before


def test_the_pyfunc_reads_frames_lists_and_dicts_and_names_the_row_of_bad_input(classifier_dir):
    model = TunesmithModel(classifier_dir)
    frame = model.predict(pd.DataFrame({"text": ["great film", "dull plot"]}))
    assert model.predict(["great film", "dull plot"]) == frame == model.predict({"text": ["great film", "dull plot"]})
    assert {"label", "score", "scores"} == set(frame[0]) and set(frame[0]["scores"]) == {"neg", "pos"}
    texts = ["fine"] * (ROWS_PER_CALL + 5)
    texts[ROWS_PER_CALL + 2] = ""
    with pytest.raises(ValueError, match=rf"row {ROWS_PER_CALL + 2}: column 'text' must be a non-empty string"):
        model.predict(pd.DataFrame({"text": texts}))
    with pytest.raises(ValueError, match="columns 'text'"):
        model.predict(42)
    with pytest.raises(ValueError, match=r"row 1: column 'text': a control character \(U\+0000\)"):
        model.predict(["fine", "bad\x00byte"])  # what the HTTP route refuses, the pyfunc refuses too
    with pytest.raises(ValueError, match=r"row 0: column 'text': 100001 characters"):
        model.predict(["x" * 100_001])


def test_chat_params_are_bounded_like_the_chat_route():
    from tunesmith.families.causal_lm.serve import PYFUNC_MAX_TOKENS, pyfunc_params

    assert pyfunc_params({}).max_tokens == 64 and pyfunc_params({"max_tokens": 8}).max_tokens == 8
    for bad in ({"max_tokens": PYFUNC_MAX_TOKENS + 1}, {"max_tokens": 0}, {"temperature": 3}, {"top_p": 0},
                {"max_tokens": "many"}):
        with pytest.raises(ValueError, match="params"):
            pyfunc_params(bad)

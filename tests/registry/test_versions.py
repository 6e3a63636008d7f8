"""Versions and aliases: register -> challenger, promote -> champion, rollback -> the previous champion."""

from __future__ import annotations

import pytest

from tunesmith.config import RegistryConfig
from tunesmith.registry import (
    RegistryError,
    champion_history,
    champion_model_dir,
    collect_lineage,
    list_models,
    model_dir_for,
    promote,
    register_version,
    rollback,
    show_model,
)
from tunesmith.registry.lineage import REQUIRED_KEYS


def _register(make_run, cfg, store, macro_f1=0.8, run="run-1"):
    lineage = collect_lineage(
        cfg, data_fingerprint="fp-1", base_model_path="/m", gate_decision={"passed": True}
    )
    return register_version(
        "sentiment", run_id=make_run(macro_f1, run), lineage=lineage, description=run, store=store
    )


def test_register_twice_gives_versions_1_and_2_with_challenger_on_2(make_run, cfg, store):
    v1 = _register(make_run, cfg, store, run="run-1")
    v2 = _register(make_run, cfg, store, run="run-2")
    assert (v1.version, v2.version) == (1, 2)
    assert v2.aliases == ["challenger"] and v2.description == "run-2"
    assert set(REQUIRED_KEYS) <= set(v2.tags)
    assert v2.tags["data_fingerprint"] == "fp-1" and v2.tags["gate_decision"] == "passed"
    assert v2.tags["config_hash"] == cfg.fingerprint()
    assert v2.source.endswith(f"{v2.run_id}/artifacts/model")


def test_register_fills_missing_lineage_with_unknown(make_run, store):
    v = register_version(
        "sentiment", run_id=make_run(), lineage={"extra": {"k": 1}}, description=None, store=store
    )
    assert v.tags["git_commit"] == "unknown" and v.tags["extra"] == '{"k": 1}'


def test_register_an_unknown_run_is_a_registry_error(store):
    with pytest.raises(RegistryError, match="no MLflow run"):
        register_version("sentiment", run_id="0" * 32, lineage={}, description=None, store=store)


def test_promote_rollback_cycle(make_run, cfg, store):
    with pytest.raises(RegistryError, match="no registered model named 'sentiment'"):
        promote("sentiment", store=store)
    _register(make_run, cfg, store, run="run-1")
    _register(make_run, cfg, store, run="run-2")
    champion = promote("sentiment", store=store)
    assert champion.version == 2 and champion.aliases == ["champion"]  # the challenger alias moved off it
    with pytest.raises(RegistryError, match="no challenger") as err:
        promote("sentiment", store=store)
    assert "--version N" in str(err.value)
    with pytest.raises(RegistryError, match="nothing to roll back") as err:
        rollback("sentiment", store=store)
    assert "version 2 is champion" in str(err.value) and "hint:" in str(err.value)

    _register(make_run, cfg, store, run="run-3")
    assert promote("sentiment", store=store).version == 3
    assert champion_history("sentiment", store=store) == [2]
    restored = rollback("sentiment", store=store)
    assert restored.version == 2 and "champion" in restored.aliases
    assert champion_history("sentiment", store=store) == []
    assert promote("sentiment", 1, store=store).version == 1  # any version, by number
    with pytest.raises(RegistryError, match="has no version 9") as err:
        promote("sentiment", 9, store=store)
    assert "versions: 1, 2, 3" in str(err.value)


def test_list_and_show(make_run, cfg, store):
    assert list_models(store=store) == []
    _register(make_run, cfg, store, macro_f1=0.7, run="run-1")
    _register(make_run, cfg, store, macro_f1=0.9, run="run-2")
    promote("sentiment", 1, store=store)
    [row] = list_models(store=store)
    assert row["name"] == "sentiment" and row["latest_version"] == 2
    assert row["aliases"] == {"champion": 1, "challenger": 2}
    assert (row["champion"], row["challenger"]) == (1, 2) and row["updated"].startswith("20")

    shown = show_model("sentiment", store=store)
    assert [v["version"] for v in shown["versions"]] == [2, 1]
    v2, v1 = shown["versions"]
    assert v2["aliases"] == ["challenger"] and v1["aliases"] == ["champion"]
    assert (
        v2["metrics"]["macro_f1"] == 0.9 and v1["metrics"]["macro_f1"] == 0.7 and "accuracy" in v1["metrics"]
    )
    assert v2["tags"]["data_fingerprint"] == "fp-1" and v2["run_id"]
    with pytest.raises(RegistryError, match="registered: sentiment"):
        show_model("sentiments", store=store)


def test_model_dir_for_champion_has_the_weights(make_run, cfg, store):
    assert champion_model_dir("sentiment", store=store) is None  # nothing registered yet
    _register(make_run, cfg, store)
    assert champion_model_dir("sentiment", store=store) is None  # registered, never promoted
    promote("sentiment", store=store)
    path = model_dir_for("sentiment", "champion", store=store)
    assert path is not None and (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    assert not (path / "training_args.bin").exists()
    assert model_dir_for("sentiment", 1, store=store) == path
    with pytest.raises(RegistryError, match="no version 5"):
        model_dir_for("sentiment", 5, store=store)


def test_model_dir_for_downloads_remote_sources_into_the_cache(make_run, store):
    run_id = make_run()
    client = store.client
    client.create_registered_model("remote")
    client.create_model_version("remote", source=f"runs:/{run_id}/model", run_id=run_id)  # not a local path
    path = model_dir_for("remote", "1", store=store)
    assert path == store.cache_dir / "remote" / "v1"
    assert (path / "model.safetensors").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # the temp dir is gone
    assert model_dir_for("remote", 1, store=store) == path  # reused, not downloaded again


def test_a_config_registry_section_selects_the_store(make_run, cfg, store, tmp_path, monkeypatch):
    """What the pipeline does: `registry=cfg.registry` instead of a Store, from another working dir."""
    monkeypatch.chdir(tmp_path.parent)  # the cwd's default store must not be used
    registry = RegistryConfig(tracking_uri=store.tracking_uri)
    version = register_version(
        "sentiment", run_id=make_run(), lineage={}, description=None, registry=registry
    )
    assert promote("sentiment", registry=registry).version == version.version
    path = model_dir_for("sentiment", "champion", registry=registry)
    assert path is not None and (path / "model.safetensors").is_file()
    assert [m["name"] for m in list_models(registry=registry)] == ["sentiment"]
    assert not (tmp_path.parent / ".tunesmith").exists()


@pytest.mark.parametrize("status", ["RUNNING", "FAILED", "KILLED"])
def test_register_refuses_a_run_that_did_not_finish(store, cfg, model_dir, status):
    from tunesmith.registry.runs import log_model_files
    from tunesmith.registry.store import ensure_experiment

    client = store.client
    run_id = client.create_run(ensure_experiment(store, "sentiment")).info.run_id
    log_model_files(client, run_id, model_dir)  # the weights are there; the run never finished
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    with pytest.raises(RegistryError, match=f"has status {status}, not FINISHED") as err:
        register_version("sentiment", run_id=run_id, lineage={}, store=store)
    assert "hint: register a run that log_run finished" in str(err.value)
    assert list_models(store=store) == []  # nothing was created on the way


def test_register_refuses_a_model_artifact_without_safetensors(store, tmp_path):
    from tunesmith.registry.store import ensure_experiment

    client = store.client
    run_id = client.create_run(ensure_experiment(store, "sentiment")).info.run_id
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    for name in ("config.json", "pytorch_model.bin"):
        client.log_artifact(run_id, str(tmp_path / name), artifact_path="model")
    client.set_terminated(run_id, "FINISHED")
    with pytest.raises(RegistryError, match=r"no .safetensors weights under artifact path 'model'") as err:
        register_version("sentiment", run_id=run_id, lineage={}, store=store)
    assert "model/config.json, model/pytorch_model.bin" in str(err.value) and "hint: log the model with" in str(err.value)
    with pytest.raises(RegistryError, match=r"no .safetensors weights under artifact path 'weights' \(found: nothing\)"):
        register_version("sentiment", run_id=run_id, model_artifact_path="weights", lineage={}, store=store)


def test_register_finds_safetensors_in_a_subfolder(store, tmp_path):
    import torch
    from safetensors.torch import save_file

    from tunesmith.registry.store import ensure_experiment

    client = store.client
    run_id = client.create_run(ensure_experiment(store, "sentiment")).info.run_id
    save_file({"w": torch.zeros(1)}, str(tmp_path / "model.safetensors"))
    client.log_artifact(run_id, str(tmp_path / "model.safetensors"), artifact_path="model/encoder")
    client.set_terminated(run_id, "FINISHED")
    assert register_version("sentiment", run_id=run_id, lineage={}, store=store).version == 1


def test_open_store_with_a_config_tracking_uri_is_what_the_models_commands_use(make_run, store, tmp_path, monkeypatch):
    """`tunesmith models ... --config C` must read the registry C's runs were registered in, not the cwd's."""
    from tunesmith.registry import open_store

    register_version("sentiment", run_id=make_run(), lineage={}, store=store)
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")  # the config wins over the environment
    other = open_store(RegistryConfig(tracking_uri=store.tracking_uri))
    assert other.tracking_uri == store.tracking_uri
    assert [m["name"] for m in list_models(store=other)] == ["sentiment"]
    assert promote("sentiment", store=other).version == 1
    assert show_model("sentiment", registry=RegistryConfig(tracking_uri=store.tracking_uri))["champion"] == 1
    assert not (tmp_path.parent / "elsewhere.db").exists() and not (tmp_path.parent / ".tunesmith").exists()

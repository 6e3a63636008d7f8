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

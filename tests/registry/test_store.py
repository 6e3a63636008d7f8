"""Where the registry lives: config, then MLFLOW_TRACKING_URI, then SQLite under .tunesmith/."""

from __future__ import annotations

from pathlib import Path

from tunesmith.config import RegistryConfig
from tunesmith.registry import open_store, tracking_uri
from tunesmith.registry.store import ensure_experiment, local_path, sqlite_path


def test_default_uri_places_the_db_under_tunesmith(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri(RegistryConfig(), workdir=tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/.tunesmith/mlflow.db"
    assert sqlite_path(uri) == tmp_path.resolve() / ".tunesmith" / "mlflow.db"


def test_config_wins_over_env_and_env_over_default(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert (
        tracking_uri(RegistryConfig(tracking_uri="sqlite:///other.db"), workdir=tmp_path)
        == "sqlite:///other.db"
    )
    assert tracking_uri(RegistryConfig(), workdir=tmp_path) == "http://tracking:5000"
    assert tracking_uri(None, workdir=tmp_path) == "http://tracking:5000"


def test_experiment_artifacts_sit_beside_the_db(store, tmp_path, capfd):
    exp_id = ensure_experiment(store, "sentiment")
    assert ensure_experiment(store, "sentiment") == exp_id  # found, not created twice
    location = store.client.get_experiment(exp_id).artifact_location
    assert local_path(location) == tmp_path.resolve() / ".tunesmith" / "mlartifacts" / "sentiment"
    assert (tmp_path / ".tunesmith" / "mlflow.db").is_file()
    err = capfd.readouterr().err
    assert "Creating initial MLflow database tables" not in err and "alembic" not in err.lower()


def test_a_remote_store_chooses_its_own_artifact_root(tmp_path):
    store = open_store(RegistryConfig(tracking_uri="http://tracking:5000"), workdir=tmp_path)
    assert store.artifact_location("sentiment") is None
    assert store.cache_dir == tmp_path.resolve() / ".tunesmith" / "cache"


def test_local_path_reads_plain_paths_and_file_uris():
    assert local_path("file:///a/b%20c") == Path("/a/b c")
    assert local_path("/a/b") == Path("/a/b")
    assert local_path("s3://bucket/x") is None and local_path("runs:/abc/model") is None

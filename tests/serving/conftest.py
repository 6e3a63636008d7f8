"""Serving fixtures: tiny models built once per session, a fresh registry per test module."""

from __future__ import annotations

import pytest
from tests.serving.serve_helpers import build_chat_lm, build_classifier, build_tiny_model_dir

from tunesmith.registry import open_store


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="session")
def classifier_dirs(tmp_path_factory, encoder_dir):
    return [build_classifier(tmp_path_factory.mktemp(f"clf{seed}"), seed, encoder_dir) for seed in (1, 2)]


@pytest.fixture(scope="session")
def chat_dir(tmp_path_factory):
    return build_chat_lm(tmp_path_factory.mktemp("chat-lm"))


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("TUNESMITH_SERVE_TOKEN", raising=False)
    return open_store(workdir=tmp_path)

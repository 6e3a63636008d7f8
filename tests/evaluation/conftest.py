"""Fixtures for the evaluation tests: a stand-in DataBundle, a config, and tuned/champion model dirs."""

from __future__ import annotations

import pytest
from tests.evaluation.helpers import (
    LABELS,
    Bundle,
    make_bundle,
    make_config,
    save_classifier,
    save_relabelled_copy,
)


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    return make_bundle()


@pytest.fixture(scope="session")
def eval_cfg(tiny_model_dir):
    return make_config(tiny_model_dir)


@pytest.fixture(scope="session")
def tuned_dir(tiny_model_dir, tmp_path_factory) -> str:
    return save_classifier(tiny_model_dir, sorted(LABELS), tmp_path_factory.mktemp("tuned"))


@pytest.fixture(scope="session")
def eval_out_dir(tmp_path_factory):
    """The run folder the shared evaluation writes calibration.json into."""
    return tmp_path_factory.mktemp("eval-run")


@pytest.fixture(scope="session")
def evaluated(eval_cfg, bundle, tuned_dir, eval_out_dir, tmp_path_factory):
    """One full evaluation with a champion (the tuned model with its labels reversed); shared by tests."""
    from tunesmith.evaluation import evaluate

    champion = save_relabelled_copy(tuned_dir, tmp_path_factory.mktemp("champion"))
    return evaluate(eval_cfg, bundle, tuned_dir, champion_dir=champion, out_dir=eval_out_dir)

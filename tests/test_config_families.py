"""Config defaults and refusals for the embedding and regression families."""

from __future__ import annotations

import pytest

from tunesmith.config import ConfigError, config_from_dict


def _cfg(task, **extra):
    return config_from_dict({"name": "f", "task": task, "data": {"path": "d.jsonl"}, **extra})


def test_embedding_defaults_to_eval_loss_without_stratification():
    cfg = _cfg("embedding")
    assert cfg.training.metric == "loss" and cfg.data.split.stratify is False and cfg.evaluation.slices == []
    assert cfg.data.query_column == "query" and cfg.embedding.loss.value == "auto"


@pytest.mark.parametrize(("extra", "message"), [
    ({"method": {"kind": "head"}}, "an embedding model has none"),
    ({"training": {"metric": "macro_f1"}}, "embedding checkpoints are chosen on eval loss"),
    ({"data": {"path": "d.jsonl", "split": {"stratify": True}}}, "no class to stratify on"),
    ({"embedding": {"loss": "triplet"}}, "embedding.loss"),
])
def test_embedding_refusals_name_the_key(extra, message):
    with pytest.raises(ConfigError, match=message):
        _cfg("embedding", **extra)


def test_regression_defaults_and_metric_families():
    cfg = _cfg("regression")
    assert cfg.training.metric == "rmse" and cfg.data.split.stratify is False
    with pytest.raises(ConfigError, match="classification metric"):
        _cfg("regression", training={"metric": "accuracy"})
    with pytest.raises(ConfigError, match="regression metric"):
        _cfg("classification", training={"metric": "rmse"})


def test_multi_label_is_its_own_family_and_the_old_flag_reads_as_it():
    explicit = _cfg("multi-label")
    flagged = config_from_dict({"name": "f", "data": {"path": "d.jsonl", "multi_label": True}})
    for cfg in (explicit, flagged):
        assert cfg.task == "multi-label" and cfg.data.multi_label is True and cfg.training.metric == "micro_f1"
    assert explicit.model_dump(mode="json") == {**flagged.model_dump(mode="json")}
    with pytest.raises(ConfigError, match="unknown task 'multilabel' \\(did you mean 'multi-label'\\?\\)"):
        _cfg("multilabel")

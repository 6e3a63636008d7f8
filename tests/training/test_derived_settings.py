"""Training settings that fit the data (tunesmith.config.derived): the rule per family, and explicit values winning."""

from __future__ import annotations

import pandas as pd
import yaml

from tunesmith.config import config_from_dict
from tunesmith.config.derived import DataStats, apply_defaults, data_stats, generic_defaults
from tunesmith.config.loading import load_config
from tunesmith.families import get


def _cfg(task: str = "classification", method: str = "full", **training):
    return config_from_dict({"name": "x", "task": task, "data": {"path": "x.csv"}, "method": {"kind": method},
                             "training": training})


def test_rule_follows_rows_classes_lengths_and_method():
    clf = get("classification").training_defaults
    demo = clf(DataStats(rows=8000, classes=2, smallest_class=3000, median_words=20, p95_words=60), _cfg()).values
    # the 8,000-row demo keeps the values it was tuned with
    assert demo == {"batch_size": 32, "epochs": 3, "warmup_ratio": 0.06, "learning_rate": 5e-5}
    small = clf(DataStats(rows=760, classes=3, smallest_class=150, median_words=12, p95_words=60), _cfg())
    assert small.values["batch_size"] == 16 and small.values["learning_rate"] == 1e-4
    assert 3 < small.values["epochs"] <= 12 and "48 steps per epoch" in small.why["epochs"]
    tiny = clf(DataStats(rows=100, classes=2, smallest_class=50, median_words=10, p95_words=20), _cfg()).values
    assert tiny["epochs"] == 12 and tiny["warmup_ratio"] == 0.1  # a short run: the cap, and a longer warmup
    long = clf(DataStats(rows=760, classes=3, smallest_class=150, median_words=300, p95_words=900),
               _cfg(**{}).model_copy(update={"model": _cfg().model.model_copy(update={"max_length": 512})}))
    assert long.values["batch_size"] == 8 and "long rows" in long.why["batch_size"]
    many = clf(DataStats(rows=3000, classes=20, smallest_class=20, median_words=10, p95_words=30), _cfg()).values
    few = clf(DataStats(rows=3000, classes=2, smallest_class=1500, median_words=10, p95_words=30), _cfg()).values
    assert many["epochs"] > few["epochs"]  # more classes, more steps
    assert clf(DataStats(rows=760), _cfg(method="lora")).values["learning_rate"] == 5e-4
    assert clf(DataStats(rows=760), _cfg(method="head")).values["learning_rate"] == 2e-3
    stats = DataStats(rows=3000, classes=10, smallest_class=100, median_words=10, p95_words=30)
    ml = get("multi-label").training_defaults(stats, _cfg("multi-label")).values
    assert ml["learning_rate"] == 2 * 5e-5 and ml["epochs"] > clf(stats, _cfg()).values["epochs"]
    reg = get("regression").training_defaults(DataStats(rows=3000), _cfg("regression")).values
    assert reg["learning_rate"] == 5e-5 and reg["batch_size"] == 16
    # a family without its own rule gets the generic one: the config's values stand
    assert get("embedding").training_defaults is None
    fitted, record = apply_defaults(_cfg(), generic_defaults(DataStats(rows=500), _cfg()))
    assert fitted.training.epochs == 3 and record["epochs"]["why"] == "the config's default (no rule for it)"


def test_stats_of_rows_and_label_lists():
    frame = pd.DataFrame({"text": ["a b c", "d e", "f", "g h i j"], "label": ["x", "y", "x", "x"]})
    s = data_stats(frame, label_column="label")
    assert (s.rows, s.classes, s.smallest_class, s.median_words) == (4, 2, 1, 2.5)
    lists = pd.DataFrame({"text": ["a", "b"], "labels": [["x", "y"], ["y"]]})
    assert data_stats(lists, label_column="labels").classes == 2


def test_explicit_config_values_win(tmp_path):
    stats = DataStats(rows=500, classes=2, smallest_class=200, median_words=10, p95_words=20)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "x", "data": {"path": "x.csv"},
                                                     "training": {"learning_rate": 3e-5}}))
    cfg = load_config(tmp_path / "c.yaml")
    fitted, record = apply_defaults(cfg, get("classification").training_defaults(stats, cfg))
    assert fitted.training.learning_rate == 3e-5
    assert record["learning_rate"] == {"value": 3e-5, "source": "config", "why": "set in the config"}
    assert record["epochs"]["source"] == "data" and fitted.training.epochs == record["epochs"]["value"] > 3
    assert fitted.training.batch_size == 16 and cfg.training.epochs == 3  # the caller's config is not changed
    cli = load_config(tmp_path / "c.yaml", ["training.batch_size=64"])  # --set is explicit too
    fitted, record = apply_defaults(cli, get("classification").training_defaults(stats, cli))
    assert fitted.training.batch_size == 64 and record["batch_size"]["why"] == "set in the config"
    steps = config_from_dict({"name": "x", "data": {"path": "x.csv"}, "training": {"max_steps": 40}})
    derived = get("classification").training_defaults(stats, steps)
    assert apply_defaults(steps, derived)[1]["epochs"]["source"] == "config"


def test_init_writes_the_derived_values_as_comments(tmp_path):
    from tests.toy import make_reviews

    from tunesmith.starter import write_starter_config

    make_reviews(300, seed=1).to_csv(tmp_path / "reviews.csv", index=False)
    write_starter_config(tmp_path / "reviews.csv", tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert "# epochs: 12" in text and "# learning_rate: 0.0001" in text and "about 240 training rows" in text
    cfg = load_config(tmp_path / "config.yaml")
    assert not {"epochs", "batch_size", "learning_rate", "warmup_ratio"} & cfg.training.model_fields_set


def test_a_pinned_schedule_keeps_its_other_keys():
    stats = DataStats(rows=500, classes=2, smallest_class=200, median_words=10, p95_words=20)
    cfg = _cfg(epochs=2)
    fitted, record = apply_defaults(cfg, get("classification").training_defaults(stats, cfg))
    assert (fitted.training.epochs, fitted.training.batch_size, fitted.training.warmup_ratio) == (2, 32, 0.06)
    assert "sets the schedule (epochs)" in record["batch_size"]["why"] and record["learning_rate"]["source"] == "data"


def test_auto_search_is_refused_with_differential_privacy():
    import pytest

    from tunesmith.config import ConfigError

    with pytest.raises(ConfigError, match="training.auto: not supported with training.privacy"):
        _cfg(auto={"budget_minutes": 1}, privacy={"epsilon": 8})

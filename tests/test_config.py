"""Config parsing: every problem reported at once, with key path, file line and a hint."""

import pytest

from tunesmith.config import ConfigError, MethodKind, config_from_dict, load_config, parse_override

MINIMAL = "name: demo\ndata:\n  path: reviews.csv\n"


def write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.model.base == "builtin:minilm"
    assert cfg.model.trust_remote_code is False
    assert cfg.method.kind is MethodKind.FULL
    assert cfg.resolve_path(cfg.data.path) == tmp_path / "reviews.csv"


def test_all_problems_reported_at_once_with_lines_and_hints(tmp_path):
    path = write(tmp_path, MINIMAL + "  text_colum: body\ntraining:\n  learing_rate: 0.1\n  epochs: -1\ngates:\n  - bad gate\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert len(exc.value.problems) == 4
    assert f"{path}:4: data.text_colum: unknown key (did you mean 'text_column'?)" in msg
    assert f"{path}:6: training.learing_rate: unknown key (did you mean 'learning_rate'?)" in msg
    assert f"{path}:7: training.epochs:" in msg
    assert f"{path}:9: gates.rules.0: cannot read gate 'bad gate'" in msg


def test_impossible_combinations(tmp_path):
    with pytest.raises(ConfigError, match="either data.path .* or data.train"):
        config_from_dict({"name": "x", "data": {"path": "a.csv", "train": "b.csv"}})
    with pytest.raises(ConfigError, match="leaves almost nothing to train on"):
        config_from_dict({"name": "x", "data": {"path": "a.csv", "split": {"eval": 0.5, "test": 0.45}}})
    with pytest.raises(ConfigError, match="no data"):
        config_from_dict({"name": "x", "data": {}})


@pytest.mark.parametrize("url, message", [
    ("redis.internal:6379", "must be a Redis or SQLAlchemy URL; write redis://host:6379/0"),
    ("sqlite://", "an in-memory SQLite database is not shared between processes"),
    ("redis://:s3cret@/0", "names no host"),
    ("redis://cache:6379/zero", "the Redis database after the host is a number"),
])
def test_shared_state_url_is_checked_and_its_password_never_shown(url, message):
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"name": "x", "data": {"path": "a.csv"}, "serving": {"shared_state": url}})
    (problem,) = exc.value.problems
    assert problem.startswith("serving.shared_state: ") and message in problem
    assert "s3cret" not in problem
    for url in ("redis://:s3cret@cache:6379/0", "rediss://cache", "postgresql+psycopg://u@db/rollout",
                "sqlite:///shared/rollout.db"):
        assert config_from_dict({"name": "x", "data": {"path": "a.csv"},
                                 "serving": {"shared_state": url}}).serving.shared_state == url


def test_overrides_are_yaml_typed(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL), ["training.epochs=1", "method.kind=lora", "gates=['accuracy >= 0.5']"])
    assert cfg.training.epochs == 1
    assert cfg.method.kind is MethodKind.LORA
    assert [str(r) for r in cfg.gates.rules] == ["accuracy >= 0.5"]
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override("training.epochs")
    with pytest.raises(ConfigError, match="training.epoch: unknown key"):
        load_config(write(tmp_path, MINIMAL), ["training.epoch=1"])


def test_gate_rules_parse():
    cfg = config_from_dict({"name": "x", "data": {"path": "a"}, "gates": ["uplift.macro_f1 >= 0.05", "ece<=0.1"]})
    rules = cfg.gates.rules
    assert (rules[0].metric, rules[0].op, rules[0].value) == ("uplift.macro_f1", ">=", 0.05)
    assert (rules[1].metric, rules[1].op, rules[1].value) == ("ece", "<=", 0.1)


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"config.yaml:3: not valid YAML"):
        load_config(write(tmp_path, "name: x\ndata:\n  path: a: b\n"))


def test_package_file_paths(tmp_path):
    cfg = config_from_dict({"name": "x", "data": {"path": "pkg:tunesmith/config/root.py"}})
    assert cfg.resolve_path(cfg.data.path).is_file()
    with pytest.raises(FileNotFoundError, match="not installed"):
        cfg.resolve_path("pkg:no_such_package_xyz/a.csv")


def test_fingerprint_tracks_content():
    a = config_from_dict({"name": "x", "data": {"path": "a"}})
    b = config_from_dict({"name": "x", "data": {"path": "a"}, "training": {"epochs": 1}})
    assert a.fingerprint() == config_from_dict({"name": "x", "data": {"path": "a"}}).fingerprint()
    assert a.fingerprint() != b.fingerprint()


def test_resolved_config_round_trips_through_yaml():
    import yaml

    cfg = config_from_dict({"name": "x", "data": {"path": "a"}, "gates": ["macro_f1 >= 0.8", "uplift.accuracy > 0"]})
    text = cfg.to_yaml()
    assert "- macro_f1 >= 0.8" in text  # gates written the way users write them
    assert config_from_dict(yaml.safe_load(text)).fingerprint() == cfg.fingerprint()

"""CLI commands that need no model: schema, env, --help."""

import json

from typer.testing import CliRunner

from tunesmith.cli import app

runner = CliRunner()


def test_schema_documents_every_top_level_key():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert {"name", "data", "model", "method", "training", "evaluation", "gates", "registry"} <= set(schema["properties"])
    metric = schema["$defs"]["TrainingConfig"]["properties"]["metric"]
    assert "early stopping" in metric["description"]


def test_env_reports_versions():
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0
    env = json.loads(result.stdout)
    assert env["torch_version"] and env["transformers_version"] and "cpu_count" in env


def test_every_verb_is_listed_in_help():
    result = runner.invoke(app, ["--help"])
    for verb in ("validate", "train", "evaluate", "run", "init", "models", "schema", "env"):
        assert verb in result.stdout


def test_schema_documents_the_families_sections():
    schema = json.loads(runner.invoke(app, ["schema"]).stdout)
    assert {"chat", "embedding", "regression", "token_classification"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False  # an unknown top-level key is an error, as the config says
    chat = schema["$defs"][schema["properties"]["chat"]["$ref"].rsplit("/", 1)[-1]]
    assert {"template", "train_on", "max_new_tokens"} <= set(chat["properties"])

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


def test_api_keys_need_a_reason_and_every_change_is_in_the_history(tmp_path, monkeypatch):
    """`tunesmith api keys add|list|revoke|history`: who, when, what and why of every key change."""
    (tmp_path / "jobs.yaml").write_text(json.dumps({"name": "api", "data": {"path": "x.jsonl"},
                                                    "jobs": {"state_dir": str(tmp_path / "jobs")}}))
    monkeypatch.chdir(tmp_path)
    cfg = ["-c", "jobs.yaml"]
    missing = runner.invoke(app, ["api", "keys", "add", "team-a", *cfg])
    assert missing.exit_code == 2 and "--reason" in missing.output
    added = runner.invoke(app, ["api", "keys", "add", "team-a", *cfg, "--role", "read", "--reason", "dashboard",
                                "--by", "ana"])
    assert added.exit_code == 0 and added.stdout.strip().startswith("ts-")
    listed = runner.invoke(app, ["api", "keys", "list", *cfg]).stdout
    (kid,) = [line.split()[0] for line in listed.splitlines() if "team-a" in line]
    assert kid.startswith("key_") and added.stdout.strip() not in listed and " read" in listed
    unknown = runner.invoke(app, ["api", "keys", "revoke", "key_[bold]", *cfg, "--reason", "x"])
    assert unknown.exit_code == 2 and "no API key" in unknown.output
    assert runner.invoke(app, ["api", "keys", "revoke", kid, *cfg, "--reason", "dashboard gone", "--by", "bo"]
                         ).exit_code == 0
    assert runner.invoke(app, ["api", "keys", "list", *cfg]).stdout.strip() == ""
    history = runner.invoke(app, ["api", "keys", "history", *cfg]).stdout.splitlines()
    assert [h.split()[2:5] for h in history] == [["ana", "key_add", kid], ["bo", "key_revoke", kid]]
    assert "'dashboard'" in history[0] and "'dashboard gone'" in history[1]

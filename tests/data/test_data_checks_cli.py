"""`tunesmith validate` prints every data check and exits 2 on a policy violation; config errors name the key."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from tests.data.data_helpers import write_frame
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config import ConfigError, config_from_dict

runner = CliRunner()


def _config(tmp_path, checks: dict) -> str:
    rows = [{"text": f"review {i} with some words {i * 13}", "label": ["pos", "neg"][i % 2]} for i in range(40)]
    train = write_frame(pd.DataFrame(rows), tmp_path / "train.jsonl")
    test = write_frame(pd.DataFrame(rows[:5] + [{"text": "mail x@example.com", "label": "pos"}]), tmp_path / "test.jsonl")
    cfg = {"name": "t", "output_dir": str(tmp_path / "runs"),
           "data": {"train": str(train), "test": str(test), "checks": {"pii": {"presidio": "off"}, **checks}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_validate_exits_2_on_leakage_and_prints_the_checks(tmp_path):
    result = runner.invoke(app, ["validate", _config(tmp_path, {})])
    assert result.exit_code == 2
    assert "data checks" in result.stdout and "leakage" in result.stdout and "fail" in result.stdout
    assert "data.checks.leakage: 5 rows repeat" in result.output and "hint:" in result.output


def test_validate_passes_when_the_policy_drops_the_leaks(tmp_path):
    result = runner.invoke(app, ["validate", _config(tmp_path, {"leakage": {"policy": "drop"}})])
    assert result.exit_code == 0, result.output
    assert "dropped" in result.stdout and "quarantined 5 rows" in result.stdout
    assert "pii" in result.stdout and "EMAIL 1" in result.stdout


def test_check_policies_are_validated_by_key_path():
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"name": "t", "data": {"path": "x", "checks": {
            "leakage": {"policy": "redact"}, "pii": {"policy": "maybe", "types": ["EMAIL", "SHOE_SIZE"]},
            "duplicates": {"near": {"threshold": 0}}}}})
    problems = "\n".join(caught.value.problems)
    assert "data.checks.leakage.policy: redact applies to pii only" in problems
    assert "data.checks.pii.policy:" in problems and "data.checks.pii.types.1:" in problems
    assert "data.checks.duplicates.near.threshold:" in problems


def test_validate_shows_where_the_first_quarantined_rows_came_from(tmp_path):
    path = _config(tmp_path, {"leakage": {"policy": "drop"}})
    train = tmp_path / "train.jsonl"
    lines = train.read_text().splitlines()
    lines.insert(2, "{not json")  # line 3 of train.jsonl
    train.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert "quarantined 6 rows" in out
    assert f"{train}:3: invalid_json:" in out  # the bad row first, with its file:line and reason
    assert out.count(": leak_exact:") == 4 and "... 1 more in" in out  # five shown, the rest counted

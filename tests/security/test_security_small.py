"""#15 finding 10: a bad model name on the `models` commands is exit 2 and one line, never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tunesmith.cli import app


@pytest.mark.parametrize("verb", ["show", "promote", "rollback"])
@pytest.mark.parametrize("name", ["../x", "a/b", "name:1", "..", "x y"])
def test_bad_model_names_exit_2_in_one_line(tmp_path, verb, name):
    result = CliRunner().invoke(app, ["models", verb, name, "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert f"model name {name!r}" in result.output and len(result.output.strip().splitlines()) <= 2
    assert not (tmp_path / "m.db").exists()  # refused before any store is opened

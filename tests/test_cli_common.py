"""The CLI's one error handler: input errors become one `error:` line and exit 2; anything else propagates."""

import pytest
import typer

from tunesmith.cli.common import EXIT_BAD_INPUT, fail, input_error_types, input_errors
from tunesmith.config import ConfigError
from tunesmith.data import DataError
from tunesmith.registry import RegistryError


def test_an_input_error_is_one_line_and_exit_2(capsys):
    with pytest.raises(typer.Exit) as exited, input_errors():
        raise DataError("reviews.csv:3", "empty text")
    assert exited.value.exit_code == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "error: reviews.csv:3: empty text\n"


@pytest.mark.parametrize("exc", [FileNotFoundError("x.csv"), ConfigError("bad key"), RegistryError("no model")])
def test_every_input_error_type_is_caught(exc):
    assert isinstance(exc, input_error_types())
    with pytest.raises(typer.Exit), input_errors():
        raise exc


def test_other_errors_propagate_unchanged():
    boom = RuntimeError("a bug, not bad input")
    with pytest.raises(RuntimeError) as raised, input_errors():
        raise boom
    assert raised.value is boom


def test_exit_passes_through():
    with pytest.raises(typer.Exit) as exited, input_errors():
        raise typer.Exit(1)
    assert exited.value.exit_code == 1


def test_also_adds_types_and_only_narrows_to_them(capsys):
    with pytest.raises(typer.Exit), input_errors(KeyError):
        raise KeyError("k")
    with pytest.raises(DataError), input_errors(RegistryError, only=True):
        raise DataError("f", "not a registry error")
    with pytest.raises(typer.Exit), input_errors(ValueError, only=True, prefix="serving settings: "):
        raise ValueError("port: must be > 0")
    assert capsys.readouterr().err.endswith("error: serving settings: port: must be > 0\n")


def test_fail_exits_with_the_code_given(capsys):
    with pytest.raises(typer.Exit) as exited:
        fail("gate failed", code=1)
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err == "error: gate failed\n"

"""schemathesis against the app's own OpenAPI schema, in process (ASGI, lifespan run): no input makes it answer 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from tests.serving.serve_helpers import register, settings

from tunesmith.registry import open_store
from tunesmith.serving import create_app


def _app(tmp_path_factory, name, model_dir, **overrides):
    workdir = tmp_path_factory.mktemp(f"schema-{name}")
    store = open_store(workdir=workdir)
    register(store, workdir, name, model_dir, champion=True)
    return create_app(name, settings=settings(max_new_tokens=4, max_body_bytes=20_000, **overrides), store=store)


@pytest.fixture(scope="module")
def classifier_schema(tmp_path_factory, classifier_dirs):
    return schemathesis.openapi.from_asgi("/openapi.json", _app(tmp_path_factory, "clf", classifier_dirs[0]))


@pytest.fixture(scope="module")
def chat_schema(tmp_path_factory, chat_dir):
    return schemathesis.openapi.from_asgi("/openapi.json", _app(tmp_path_factory, "chat", chat_dir))


_examples = hypothesis_settings(max_examples=12, deadline=None, derandomize=True, database=None,
                                suppress_health_check=list(HealthCheck))


def _fuzz(schema) -> list[str]:
    """Run every operation of the schema through hypothesis-generated cases; the paths it covered."""
    covered = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @_examples
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(checks=[schemathesis.checks.not_a_server_error])

        run()
        covered.append(f"{operation.method.upper()} {operation.path}")
    return covered


# schemathesis' pytest plugin (from_fixture) needs pytest < 9.2; driving hypothesis directly needs neither.
def test_classifier_server_never_answers_5xx(classifier_schema):
    covered = _fuzz(classifier_schema)
    assert {"POST /v1/classify", "POST /v1/chat/completions", "POST /v1/embeddings", "GET /readyz"} <= set(covered)


def test_chat_server_never_answers_5xx(chat_schema):
    covered = _fuzz(chat_schema)
    assert {"POST /v1/chat/completions", "POST /v1/completions"} <= set(covered)

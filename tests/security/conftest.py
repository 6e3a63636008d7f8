"""The serving fixtures (tiny models built once per session, a fresh registry per test) for the security suite."""

from tests.serving.conftest import chat_dir, classifier_dirs, encoder_dir, store  # noqa: F401 (pytest fixtures)

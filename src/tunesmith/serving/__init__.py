"""tunesmith serving stage: the registered champion (and challenger) behind FastAPI, with safe rollout.

    tunesmith serve --model sentiment --config tunesmith.yaml --port 8000

See app.py (routes), state.py (routing, rollback, registry watching), batching.py, metrics.py.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunesmith.serving.app import create_app
    from tunesmith.serving.models import ServeLoadError, detect_family, load_served
    from tunesmith.serving.state import ServingState

# Names load on first use: a family's route definitions import `tunesmith.serving.schemas` without the server.
_WHERE = {"create_app": "app", "ServeLoadError": "models", "detect_family": "models", "load_served": "models",
          "ServingState": "state"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'tunesmith.serving' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tunesmith.serving.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def redactor(enabled: bool) -> Callable[[str], str] | None:
    """The PII redactor for logged inputs, or None when `serving.predictions.redact_pii` is off."""
    if not enabled:
        return None
    from tunesmith.data.pii import redact_text  # the data gates' regex+checksum detectors

    return redact_text


def prediction_log_for(settings, workdir=None):
    """The prediction log the settings ask for (None when disabled)."""
    if not settings.predictions.enabled:
        return None
    from tunesmith.monitoring.predictions import PredictionLog, default_url

    return PredictionLog(settings.predictions.url or default_url(workdir),
                         sample_rate=settings.predictions.sample_rate, redact=redactor(settings.predictions.redact_pii))


__all__ = ["ServeLoadError", "ServingState", "create_app", "detect_family", "load_served",
           "prediction_log_for", "redactor"]

"""tunesmith serving stage: the registered champion (and challenger) behind FastAPI, with safe rollout.

    tunesmith serve --model sentiment --config tunesmith.yaml --port 8000

See app.py (routes), state.py (routing, rollback, registry watching), batching.py, metrics.py.
"""

from __future__ import annotations

from collections.abc import Callable

from tunesmith.serving.app import create_app
from tunesmith.serving.models import ServeLoadError, ServeTask, detect_task, load_served
from tunesmith.serving.state import ServingState


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


def serve(name: str, *, settings, store=None, jobs_config=None) -> None:
    """Run the server in the foreground until SIGINT/SIGTERM (which drains in-flight requests first).

    `jobs_config` (a Config): also serve the fine-tuning jobs API (files, jobs, events, checkpoints) on this app."""
    import uvicorn

    from tunesmith.registry import RegistryError, open_store
    from tunesmith.serving.state import alias_versions

    store = store or open_store()
    if "champion" not in alias_versions(store, name):  # also raises RegistryError naming the models that exist
        raise RegistryError(f"{name} has no champion to serve",
                            hint=f"promote a version first: `tunesmith models promote {name}`")
    app = create_app(name, settings=settings, store=store, prediction_log=prediction_log_for(settings))
    if settings.review_page:
        import os

        from tunesmith.monitoring.predictions import default_url
        from tunesmith.review.web import mount_review

        mount_review(app, settings.predictions.url or default_url(), name,
                     token=os.environ.get(settings.auth_token_env) or None)
    if jobs_config is not None:
        from tunesmith.jobs.api import mount_jobs

        mount_jobs(app, jobs_config)  # chat and models stay the serving app's own
    uvicorn.run(app, host=settings.host, port=settings.port, timeout_graceful_shutdown=int(settings.shutdown_grace_s),
                log_level="info", access_log=False)


__all__ = ["ServeLoadError", "ServeTask", "ServingState", "create_app", "detect_task", "load_served",
           "prediction_log_for", "redactor", "serve"]

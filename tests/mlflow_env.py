"""MLflow's own tools resolve `models:/` URIs through MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI: point them at a test
store for a block, then restore the environment exactly (mlflow.set_tracking_uri would leak into later tests)."""

from __future__ import annotations

import os
from contextlib import contextmanager

KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def mlflow_uris(store):
    before = {key: os.environ.get(key) for key in KEYS}
    os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_REGISTRY_URI"] = store.tracking_uri, store.registry_uri
    try:
        yield {**os.environ}
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

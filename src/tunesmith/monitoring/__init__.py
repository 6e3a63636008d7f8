"""tunesmith monitoring stage: the prediction log the server writes (drift and live accuracy read it)."""

from tunesmith.monitoring.predictions import PredictionLog, default_url, read_predictions

__all__ = ["PredictionLog", "default_url", "read_predictions"]

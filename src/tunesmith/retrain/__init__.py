"""tunesmith retrain stage: the next dataset version from new labels, trained, gated and registered as challenger."""

from tunesmith.retrain.dataset import DatasetVersion, build_dataset_version, collect_labels, label_sources
from tunesmith.retrain.run import RetrainOutcome, retrain

__all__ = ["DatasetVersion", "RetrainOutcome", "build_dataset_version", "collect_labels", "label_sources", "retrain"]

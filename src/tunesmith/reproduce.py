"""`tunesmith reproduce NAME:VERSION` (or an MLflow RUN_ID): re-run a registered model from its lineage and compare.

    result = reproduce("sentiment:3")
    result.weights_identical, result.metric_diffs, result.env_diffs

The run's stored config (`config.yaml`, logged with every `tunesmith run`) is trained again on the same data,
checked first against the recorded data fingerprint: changed data is refused, since nothing could be compared.
Same config + same data + same seed on the same CPU thread count gives bit-identical weights (safetensors
sha256); the library versions and hardware recorded with the run are compared too, to explain any difference.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunesmith.config import config_from_dict
from tunesmith.config.loading import CONFIG_ARTIFACT, PATH_KEYS, portable_config, write_run_config  # noqa: F401
from tunesmith.registry.lineage import weights_sha256  # noqa: F401 (re-exported)

# Data keys that hold file paths: made absolute in a stored config so it runs from anywhere.
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# Metrics that compare against whatever is champion *now*: they may change with no change to the model.
_MOVING = ("vs_champion", "champion", "uplift_vs_champion")


class ReproduceError(ValueError):
    """Nothing to reproduce: unknown version or run, no stored config, or the data changed since."""


@dataclass
class ReproduceResult:
    ref: str
    run_id: str  # the original MLflow run
    new_run_id: str | None
    run_dir: Path
    recorded_weights: str
    new_weights: str
    metric_diffs: dict[str, tuple[float, float]] = field(default_factory=dict)
    env_diffs: dict[str, tuple[str, str]] = field(default_factory=dict)
    compared_metrics: int = 0

    @property
    def weights_identical(self) -> bool:
        return self.recorded_weights == self.new_weights

    @property
    def reproduced(self) -> bool:
        return self.weights_identical and not self.metric_diffs


def resolve_ref(ref: str, client) -> tuple[str, dict[str, str]]:
    """(run id, lineage tags) for `NAME:VERSION` (a registered version) or a 32-hex MLflow run id."""
    if _RUN_ID.match(ref):
        try:
            run = client.get_run(ref)
        except Exception as exc:  # MLflow raises its own RestException/MlflowException
            raise ReproduceError(f"run {ref}: not found in the tracking store ({exc.__class__.__name__})") from None
        return ref, dict(run.data.tags)
    name, sep, version = ref.rpartition(":")
    if not sep or not name or not version:
        raise ReproduceError(f"{ref!r}: give NAME:VERSION (e.g. sentiment:3) or a 32-character MLflow run id")
    try:
        mv = client.get_model_version(name, version)
    except Exception as exc:
        raise ReproduceError(f"{ref}: no such registered version ({exc.__class__.__name__}); "
                             f"see `tunesmith models show {name}`") from None
    run = client.get_run(mv.run_id)
    return mv.run_id, {**dict(run.data.tags), **dict(mv.tags or {})}


def reproduce(ref: str, *, registry=None, say: Callable[[str], None] = lambda _: None) -> ReproduceResult:
    """Re-run `ref` from its stored config after checking the data fingerprint; compare weights and metrics.

    Raises:
        ReproduceError: unknown ref, no stored config or weights hash, or data that changed since.
    """
    from tunesmith.data import prepare_data
    from tunesmith.pipeline import run as run_pipeline
    from tunesmith.registry import collect_environment, open_store

    client = open_store(registry).client
    run_id, tags = resolve_ref(ref, client)
    recorded_hash = tags.get("weights_sha256")
    if not recorded_hash:
        raise ReproduceError(f"{ref}: run {run_id} records no weights_sha256 (logged by tunesmith runs since "
                             "reproducibility tracking was added); nothing to compare against")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, CONFIG_ARTIFACT, tmp)
        except Exception:
            raise ReproduceError(f"{ref}: run {run_id} has no stored {CONFIG_ARTIFACT}; it predates reproducible "
                                 "runs") from None
        raw = yaml.safe_load(Path(path).read_text())
    cfg = config_from_dict(raw, source=None)
    cfg.registry.auto_register = False  # a reproduction is compared, never registered as a new version
    if registry is not None:
        cfg.registry = registry.model_copy(update={"auto_register": False})
    recorded_fp = tags.get("data_fingerprint")
    now_fp = prepare_data(cfg, None).fingerprint
    if recorded_fp and now_fp != recorded_fp:
        raise ReproduceError(
            f"{ref}: the data changed since it was trained: fingerprint {now_fp[:16]} now, {recorded_fp[:16]} "
            f"recorded (data: {cfg.data.path or cfg.data.train}); restore the original data to reproduce it"
        )
    say(f"data fingerprint {now_fp[:16]} matches; re-running {ref} (run {run_id}) from its stored config")
    outcome = run_pipeline(cfg, say=say)
    new_hash = weights_sha256(outcome.train_result.model_dir)
    original = client.get_run(run_id).data.metrics
    new = outcome.eval_report.flat_metrics()
    compared, diffs = _compare_metrics(original, new)
    env_now = collect_environment()
    env_diffs = {k: (tags[k], v) for k, v in env_now.items() if k in tags and tags[k] != v}
    return ReproduceResult(ref=ref, run_id=run_id, new_run_id=outcome.mlflow_run_id, run_dir=outcome.run_dir,
                           recorded_weights=recorded_hash, new_weights=new_hash, metric_diffs=diffs,
                           env_diffs=env_diffs, compared_metrics=compared)


def _compare_metrics(original: Mapping[str, float], new: Mapping[str, Any]) -> tuple[int, dict]:
    from tunesmith.registry.runs import metric_entries

    now = {name: value for name, value, _ in metric_entries(new)}
    keys = [k for k in original if k in now and not k.startswith(_MOVING)]
    return len(keys), {k: (original[k], now[k]) for k in keys if original[k] != now[k]}

"""`monitoring:`, `retrain:` and `search:`: the loop after the first run, and hyperparameter search."""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from tunesmith.config.base import (
    StrictModel,
)
from tunesmith.config.training import (
    GatesConfig,
)

_WINDOW_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def parse_window(text: str) -> tuple[int | None, float | None]:
    """`"500"` -> (500 predictions, None); `"24h"` / `"30m"` / `"7d"` -> (None, seconds)."""
    m = _WINDOW_RE.match(str(text))
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"cannot read window {text!r}; write a count of predictions (500) or a duration (30m, 24h, 7d)")
    n, unit = int(m.group(1)), m.group(2)
    if not unit:
        return n, None
    return None, float(n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


class DriftConfig(StrictModel):
    """Drift tests of `tunesmith monitor`: a test flags drift when its p-value is below `p_value`."""

    p_value: float = Field(0.01, gt=0, lt=1, description="a test flags drift when its p-value is below this")
    psi: float = Field(0.2, gt=0, description="predicted-label PSI above this flags prediction drift "
                       "(0.1 moderate, 0.25 large by the usual rule of thumb)")
    ece_increase: float = Field(0.05, gt=0, description="calibration drift: window ECE minus reference ECE above this")
    permutations: int = Field(200, ge=20, le=10000, description="permutations for the MMD p-value")
    max_rows: int = Field(300, ge=10, description="embedding drift: a seeded sample of at most this many window texts")
    min_rows: int = Field(30, ge=5, description="fewer logged predictions in the window: drift tests say n/a")
    reference_rows: int = Field(300, ge=10, description="texts sampled at training time for the embedding reference")
    top_tokens: int = Field(50, ge=5, description="token-distribution test: the reference's most frequent tokens "
                            "(+ one bucket for the rest)")
    min_flags: int = Field(2, ge=1, description="drift is declared when at least this many tests flag")

    @model_validator(mode="after")
    def _permutations_can_flag(self) -> DriftConfig:
        # The smallest permutation p-value is 1 / (permutations + 1); fewer could never flag embedding drift.
        if (self.permutations + 1) * self.p_value < 1:
            raise ValueError(f"permutations: {self.permutations} permutations cannot reach p < {self.p_value:g}; "
                             f"use at least {int(1 / self.p_value)}")
        return self


def duration(value: str | None, info) -> str | None:
    """A key that holds a duration (30m, 6h, 7d), or None where the key allows it."""
    if value is not None and parse_window(value)[1] is None:
        raise ValueError(f"{info.field_name} {value!r} must be a duration such as 30m, 6h or 7d")
    return value


# The request-latency histogram's buckets (serving exports tunesmith_request_latency_seconds with these): a latency
# objective's threshold must be one of them, so an alert rule can read its bucket.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class SloConfig(StrictModel):
    """Service-level objectives: live accuracy on predictions that received a true label, the families' live-quality
    targets, and availability and latency of the serving routes (what `tunesmith ops rules` alerts on)."""

    accuracy: float = Field(0.9, gt=0, lt=1, description="target share of labeled predictions that are correct; "
                            "the error budget is 1 - accuracy")
    macro_f1: float | None = Field(0.8, gt=0, le=1, description="live macro-F1 below this breaches the SLO")
    bucket: str = Field("1h", description="time bucket of the live-accuracy series (30m, 1h, 1d)")
    min_labels: int = Field(20, ge=1, description="fewer labels in the window: live accuracy says n/a")
    targets: dict[str, float] = Field(default_factory=dict, description="live-quality objectives of the families "
                                      "other than classification, by metric: mae: 0.5 (at most), micro_f1: 0.8 (at "
                                      "least), thumbs_up_rate: 0.7; the family says which way each metric is better")

    availability: float = Field(0.995, gt=0, lt=1, description="share of requests answered without a server error "
                                "(5xx) over 30 days; the error budget is 1 - availability")
    latency_p95_s: float | None = Field(0.5, description="95% of requests answered within this many seconds (one of "
                                        "the latency histogram's buckets); null: no p95 objective")
    latency_p99_s: float | None = Field(2.5, description="99% of requests answered within this many seconds; null: "
                                        "no p99 objective")
    human_review_rate: float | None = Field(0.2, gt=0, le=1, description="at most this share of served predictions "
                                            "routed to people by the review queue (tunesmith review, then monitor); "
                                            "null: no objective")

    @field_validator("latency_p95_s", "latency_p99_s")
    @classmethod
    def _latency(cls, v: float | None) -> float | None:
        if v is not None and float(v) not in LATENCY_BUCKETS:
            raise ValueError(f"{v} is not a bucket of tunesmith_request_latency_seconds; use one of "
                             f"{', '.join(f'{b:g}' for b in LATENCY_BUCKETS)}")
        return v

    _bucket = field_validator("bucket")(lambda v, info: duration(v, info))


class AlertsConfig(StrictModel):
    """What `tunesmith ops rules` writes into every alert: where its runbook is, and how often monitor runs."""

    runbook_url: str = Field("docs/runbooks.md#{alert}", description="each alert's runbook_url annotation; {alert} "
                             "is the alert's anchor and {model} the model (the runbook `tunesmith ops runbook` "
                             "writes for it, e.g. https://wiki.example.com/ml/{model}/runbook#{alert})")
    owner: str | None = Field(None, description="who is on call for this model (a team or person): an `owner` label "
                              "on every alert and named in its runbook")
    monitor_every: str = Field("1h", description="how often `tunesmith monitor` runs (cron): its gauges older than "
                               "twice this raise TunesmithMonitorStale")

    _every = field_validator("monitor_every")(lambda v, info: duration(v, info))

    @field_validator("runbook_url")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        try:
            v.format(alert="a", model="m")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{v!r} may hold {{alert}} and {{model}} only ({type(exc).__name__}: {exc})") from None
        return v


class TriggersConfig(StrictModel):
    """When `tunesmith monitor --act` starts a retrain; any enabled trigger that fires is enough."""

    drift: bool = Field(True, description="drift declared (monitoring.drift.min_flags tests flagged)")
    live_f1_below_slo: bool = Field(True, description="a classifier's live macro-F1 below monitoring.slo.macro_f1")
    live_quality_below_slo: bool = Field(True, description="a family's live quality breaching monitoring.slo.targets "
                                         "(MAE, micro-F1, thumbs-up rate, ...)")
    new_labels: int | None = Field(200, ge=1, description="at least this many labels since the last dataset version")
    schedule: str | None = Field(None, description="retrain at least this often (e.g. 7d), labels permitting")
    min_new_labels: int = Field(20, ge=1, description="never retrain on fewer new labels, whatever fired")

    _schedule = field_validator("schedule")(lambda v, info: duration(v, info))


class MonitoringConfig(StrictModel):
    """`tunesmith monitor`: drift, live accuracy and the retrain triggers."""

    window: str = Field("1000", description="the last N logged predictions, or a duration (30m, 24h, 7d)")
    report_dir: str = Field(".tunesmith/monitor", description="monitor reports, Prometheus textfile, trigger state")
    drift: DriftConfig = Field(default_factory=DriftConfig)
    slo: SloConfig = Field(default_factory=SloConfig)
    triggers: TriggersConfig = Field(default_factory=TriggersConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    checks_every: str | None = Field("1d", description="re-run a family's scheduled checks against each served "
                                     "version at most this often (a chat model's evaluation.regression suite); "
                                     "null: never")

    _checks_every = field_validator("checks_every")(lambda v, info: duration(v, info))

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> str:
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)  # `window: 500` in YAML is a count
        if isinstance(v, str):
            parse_window(v)
        return v


class RetrainConfig(StrictModel):
    """`tunesmith retrain`: the next dataset version from new labels, trained, gated and registered as challenger."""

    init_from: Literal["champion", "base"] = Field("champion", description="start from the champion's weights or "
                                                   "from model.base")
    rehearsal: float = Field(0.5, gt=0, le=1, description="share of the previous training rows kept in the next "
                             "version (seeded sample) so old behaviour is not forgotten")
    recent_holdout: float = Field(0.3, gt=0, lt=1, description="share of the new labels held out as the recent-traffic "
                                  "evaluation slice (the newest ones)")
    eval_holdout: float = Field(0.15, ge=0, lt=1, description="share of the other new labels (seeded, whole groups) "
                                "added to the eval split, so checkpoint selection, early stopping and calibration "
                                "see the traffic the model now serves; they stay in eval in later versions. 0: the "
                                "eval split is the parent's only")
    min_recent_rows: int = Field(10, ge=1, description="fewer held-out recent rows: the recent gates fail")
    recent_gates: GatesConfig = Field(default_factory=lambda: GatesConfig(rules=["vs_champion.macro_f1 >= 0"]),
                                      description="gates on the recent slice (challenger vs champion, paired bootstrap)")
    sources: list[Literal["feedback", "review"]] = Field(default_factory=lambda: ["feedback", "review"],
                                                         description="where new labels come from")
    datasets_dir: str = Field(".tunesmith/datasets", description="dataset versions (train/eval/test + manifest)")


class PrunerKind(str, Enum):
    """How `tunesmith tune` stops unpromising trials early, judged on the eval metric at each evaluation."""

    MEDIAN = "median"  # optuna MedianPruner: below the median of earlier trials at the same step
    ASHA = "asha"  # optuna SuccessiveHalvingPruner (asynchronous successive halving)
    HYPERBAND = "hyperband"  # optuna HyperbandPruner (several successive-halving brackets)
    NONE = "none"


class SearchParam(StrictModel):
    """One searched key: a range (`low`/`high`, optional `log`, `step`) or a list of `choices`."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = Field(False, description="sample the range on a log scale (learning rates)")
    step: float | None = Field(None, gt=0, description="grid step inside the range")
    choices: list[Any] | None = Field(None, min_length=1, description="categorical values (ints, floats, strings)")

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchParam:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either low/high or choices, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (a range) or choices (a list)")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    @property
    def is_int(self) -> bool:
        """A range written with whole numbers (epochs: {low: 1, high: 3}) is sampled as integers."""
        return self.choices is None and isinstance(self.low, int) and isinstance(self.high, int)


class SearchConfig(StrictModel):
    """`tunesmith tune`: an Optuna study over config keys, selected on the eval split (never test)."""

    space: dict[str, SearchParam] = Field(..., min_length=1, description="config key path -> range or choices, e.g. "
                                          "training.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}")
    n_trials: int | None = Field(20, ge=1, description="finished (complete or pruned) trials the study ends with, "
                                 "across every worker")
    timeout_s: float | None = Field(None, gt=0, description="this worker stops starting trials after this many seconds")
    pruner: PrunerKind = PrunerKind.MEDIAN
    startup_trials: int = Field(3, ge=0, description="trials before pruning and TPE start (random / enqueued)")
    include_default: bool = Field(True, description="trial 0 is the config's own values, so the best is never worse "
                                  "than the default on eval")
    storage: str | None = Field(None, description="Optuna RDB URL shared by workers; default sqlite:///"
                                "<output_dir>/<name>/tune/study.db")
    study: str | None = Field(None, description="study name (default: the config's name)")
    max_train_rows: int | None = Field(None, gt=0, description="trials train on a seeded sample of this many train "
                                       "rows (the eval split stays whole); best.yaml uses all of them")
    overrides: dict[str, Any] = Field(default_factory=dict, description="fixed key paths for trials only, e.g. "
                                      "data.checks.label_issues.enabled: false; not written to best.yaml")

    @model_validator(mode="after")
    def _stop_rule(self) -> SearchConfig:
        if self.n_trials is None and self.timeout_s is None:
            raise ValueError("set n_trials, timeout_s or both, or the study never ends")
        clash = sorted(set(self.space) & set(self.overrides))
        if clash:
            raise ValueError(f"{clash} are both searched (space) and fixed (overrides)")
        return self



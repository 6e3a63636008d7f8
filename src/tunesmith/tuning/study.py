"""`tunesmith tune`: an Optuna study over config keys; each trial trains on train and is scored on eval only.

    result = tune(cfg)                                    # sqlite:///<output_dir>/<name>/tune/study.db
    result = tune(cfg, storage="postgresql://...", study_name="sentiment-lr")   # many workers, one study

TPE (seeded) samples the `search.space`; the eval metric is reported to Optuna at every evaluation and a
pruned trial stops training at once. Every trial is an MLflow child run under one parent run per study.
The study ends with `search.n_trials` finished trials across all workers; the best trial's full config is
written to best.yaml, which `tunesmith run` takes as is.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tunesmith.config import Config, ConfigError, PrunerKind
from tunesmith.tuning.space import config_with, current_values, suggest, write_best_config

Say = Callable[[str], None]
LOWER_IS_BETTER = ("loss", "rmse", "mae")
PARENT_ATTR = "mlflow_parent_run_id"


@dataclass
class TuneResult:
    study_name: str
    storage: str
    direction: str  # "maximize" | "minimize"
    metric: str  # eval_<training.metric>
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    best_config: Path
    finished: int  # complete + pruned trials in the study (every worker)
    pruned: int
    this_worker: int  # trials this process ran
    parent_run_id: str | None
    elapsed_s: float
    trials: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["best_config"] = str(self.best_config)
        return d


class TuneError(ValueError):
    """The config cannot be tuned: no `search:` block, data keys searched, no eval split, ..."""


class OptunaPruning(TrainerCallback):
    """Reports the eval metric to the trial at each evaluation; stops training when the pruner says so."""

    def __init__(self, trial, metric_key: str):
        self.trial = trial
        self.metric_key = metric_key
        self.pruned_at: int | None = None
        self.reports: list[tuple[int, float]] = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(self.metric_key)
        if value is None or not math.isfinite(value):
            return control
        self.reports.append((state.global_step, float(value)))
        self.trial.report(float(value), step=state.global_step)
        if self.trial.should_prune():
            self.pruned_at = state.global_step
            control.should_training_stop = True
        return control


def default_storage(cfg: Config) -> str:
    path = (Path(cfg.output_dir) / cfg.name / "tune" / "study.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def make_pruner(kind: PrunerKind, startup: int):
    import optuna

    if kind is PrunerKind.MEDIAN:
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    if kind is PrunerKind.ASHA:
        return optuna.pruners.SuccessiveHalvingPruner()
    if kind is PrunerKind.HYPERBAND:
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def open_study(cfg: Config, storage: str, study_name: str):
    """(study, created): create the study, or join it when another worker already has.

    Creating is atomic in the RDB (study names are unique), so exactly one worker sees `created` and sets the
    study up (MLflow parent run, the enqueued default trial). SQLite waits on locks instead of failing.
    """
    import optuna

    direction = "minimize" if cfg.training.metric in LOWER_IS_BETTER else "maximize"
    kwargs = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}
    rdb = _first_open(lambda: optuna.storages.RDBStorage(storage, engine_kwargs=kwargs))
    common = {"storage": rdb, "study_name": study_name, "direction": direction,
              "sampler": optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=cfg.search.startup_trials),
              "pruner": make_pruner(cfg.search.pruner, cfg.search.startup_trials)}
    try:
        return optuna.create_study(**common, load_if_exists=False), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.create_study(**common, load_if_exists=True), False


def tune(cfg: Config, *, storage: str | None = None, study_name: str | None = None, n_trials: int | None = None,
         timeout_s: float | None = None, say: Say = lambda _: None, callbacks: list | None = None) -> TuneResult:
    """Run trials until the study holds `n_trials` finished trials (every worker counted) or `timeout_s` passes.

    Raises:
        TuneError: no `search:` block, a searched data key, or no eval split to select on.
        ConfigError: a searched value the config rejects (named by key path).
    """
    import optuna

    if cfg.search is None:
        raise TuneError(f"{cfg.source_path or 'config'}: no `search:` block; add one with a `space:` of key paths "
                        "(see examples/sentiment/config.yaml)")
    if cfg.training.privacy is not None:  # each trial is a release of a model trained on the private rows
        raise TuneError("training.privacy: every trial would spend the budget again, so a study's epsilon is many "
                        "times training.privacy.epsilon; tune without it (on public or synthetic rows), then train "
                        "once with training.privacy")
    search = cfg.search
    data_keys = [k for k in search.space if k.startswith("data.")]
    if data_keys:
        raise TuneError(f"search.space: {data_keys} are data keys; the data is prepared once per study, so search "
                        "training/method/model keys (fix data keys in search.overrides)")
    n_trials = n_trials or search.n_trials
    timeout_s = timeout_s or search.timeout_s
    storage = storage or search.storage or default_storage(cfg)
    study_name = study_name or search.study or cfg.name
    base = config_with(cfg, {}, search.overrides)  # the trial-only overrides, checked before any data is read
    for key, p in search.space.items():  # every end of every range must make a valid config
        for value in (p.choices or [p.low, p.high]):
            try:
                config_with(base, {key: value})
            except ConfigError as exc:
                raise ConfigError([f"search.space.{key}: {value!r} is not a valid value: {'; '.join(exc.problems)}"],
                                  source=cfg.source_path) from None

    from tunesmith.data import prepare_data

    study_dir = (Path(cfg.output_dir) / cfg.name / "tune" / study_name).resolve()  # best.yaml, trial run dirs
    study_dir.mkdir(parents=True, exist_ok=True)
    bundle = prepare_data(base, study_dir)
    if len(bundle.eval) == 0:
        raise TuneError("tuning selects on the eval split, which is empty; set data.split.eval or data.eval")
    say(f"data: {len(bundle.train)} train / {len(bundle.eval)} eval rows (the test split is never used here)")
    trial_bundle = _subsample(bundle, search.max_train_rows, cfg.seed)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, created = open_study(cfg, storage, study_name)
    metric_key = f"eval_{cfg.training.metric}"
    tracker = _Tracker(cfg, study, study_name, created)
    if created and search.include_default:
        defaults = current_values(cfg, search.space)
        if len(defaults) == len(search.space):
            study.enqueue_trial(defaults, user_attrs={"default": True}, skip_if_exists=True)
    ran: list[int] = []

    def objective(trial) -> float:
        if n_trials is not None and trial.number >= n_trials:  # another worker took the last slot first
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise _Surplus(f"trial {trial.number}: the study already has {n_trials} trials")
        values = suggest(trial, search.space)
        trial_cfg = config_with(base, values)
        run_dir = study_dir / f"trial-{trial.number:04d}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        pruning = OptunaPruning(trial, metric_key)
        say(f"trial {trial.number}: {_fmt(values)}")
        ran.append(trial.number)
        from tunesmith.training import train

        t0 = time.perf_counter()
        try:
            result = train(trial_cfg, trial_bundle, run_dir, callbacks=[pruning, *(callbacks or [])])
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)  # trials keep no weights: best.yaml retrains on all rows
        elapsed = time.perf_counter() - t0
        value = result.best_metric
        if value is None:
            raise TuneError(f"trial {trial.number} reported no {metric_key}; tuning needs evaluations on eval")
        trial.set_user_attr("train_runtime_s", round(elapsed, 2))
        state = "pruned" if pruning.pruned_at is not None else "complete"
        tracker.log_trial(trial.number, values, value, pruning.reports, state, elapsed)
        say(f"trial {trial.number}: {metric_key}={value:.4f} ({state}, {elapsed:.0f}s)")
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at step {pruning.pruned_at}")
        return value

    t0 = time.perf_counter()
    stop = [optuna.study.MaxTrialsCallback(n_trials, states=None)] if n_trials is not None else []
    study.optimize(objective, n_trials=None, timeout=timeout_s, callbacks=stop, catch=(_Surplus,),
                   gc_after_trial=True)
    elapsed = time.perf_counter() - t0
    return _finish(cfg, study, study_name, storage, study_dir, metric_key, tracker, ran, elapsed)


class _Surplus(Exception):
    """Two workers asked for a new trial at once and the study already had its total: this one is not run."""


def _finish(cfg, study, study_name, storage, study_dir, metric_key, tracker, ran, elapsed) -> TuneResult:
    import optuna

    states = optuna.trial.TrialState
    finished = [t for t in study.trials if t.state in (states.COMPLETE, states.PRUNED)]
    complete = [t for t in finished if t.state == states.COMPLETE]
    if not complete:
        raise TuneError(f"study {study_name!r} has no complete trial yet ({len(finished)} pruned); run more trials")
    best = study.best_trial
    best_values = {k: best.params[k] for k in cfg.search.space}
    header = (f"best trial {best.number} of study {study_name!r} ({storage}): {metric_key}={best.value:.4f} on the "
              f"eval split\nrun it with: tunesmith run {study_dir / 'best.yaml'}")
    path = write_best_config(cfg, best_values, study_dir / "best.yaml", header=header)
    tracker.log_best(best.number, best.value, best_values, path)
    trials = [{"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
               "default": bool(t.user_attrs.get("default"))}
              for t in study.trials if t.state in (states.COMPLETE, states.PRUNED)]
    return TuneResult(
        study_name=study_name, storage=storage, direction=study.direction.name.lower(), metric=metric_key,
        best_trial=best.number, best_value=float(best.value), best_params=best_values, best_config=path,
        finished=len(finished), pruned=len(finished) - len(complete), this_worker=len(ran),
        parent_run_id=tracker.parent_run_id, elapsed_s=round(elapsed, 1), trials=trials,
    )


def _first_open(make, attempts: int = 8):
    """Run `make`, retrying while another worker is creating the same database schema (SQLite: both insert
    the schema version at once and one gets an IntegrityError / 'database is locked')."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(attempts):
        try:
            return make()
        except (IntegrityError, OperationalError, Exception) as exc:  # MLflow wraps the SQLAlchemy error
            retryable = isinstance(exc, IntegrityError | OperationalError) or "UNIQUE constraint" in str(exc) \
                or "database is locked" in str(exc) or "already exists" in str(exc)
            if not retryable or attempt == attempts - 1:
                raise
            time.sleep(0.3 * (attempt + 1))


def _subsample(bundle, max_rows: int | None, seed: int):
    """The bundle with a seeded sample of `max_rows` train rows (the eval split untouched)."""
    if not max_rows or len(bundle.train) <= max_rows:
        return bundle
    small = copy.copy(bundle)
    small.train = bundle.train.sample(n=max_rows, random_state=seed).sort_index()
    return small


def _fmt(values: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


class _Tracker:
    """MLflow: one parent run per study (its id kept in the study, so every worker logs under it), a child per trial."""

    def __init__(self, cfg: Config, study, study_name: str, created: bool):
        from tunesmith.registry.store import ensure_experiment, open_store

        self.study_name = study_name
        if not created:  # wait for the creator: it also creates the MLflow database, which two workers cannot
            self.parent_run_id = self._wait_for_parent(study)
        store = open_store(cfg.registry)
        self.client = store.client
        self.experiment_id = _first_open(lambda: ensure_experiment(store, cfg.registry.experiment or cfg.name))
        if created:
            run = self.client.create_run(self.experiment_id, run_name=f"tune-{study_name}",
                                         tags={"tunesmith.study": study_name, "tunesmith.kind": "tune"})
            self.parent_run_id = run.info.run_id
            space = {f"search.{k}": str(v.model_dump(exclude_none=True)) for k, v in cfg.search.space.items()}
            self._params(self.parent_run_id, {**space, "search.pruner": cfg.search.pruner.value,
                                              "search.n_trials": str(cfg.search.n_trials)})
            study.set_user_attr(PARENT_ATTR, self.parent_run_id)

    def _wait_for_parent(self, study) -> str:
        deadline = time.monotonic() + 120  # the creating worker sets it right after creating the study
        while (parent := study.user_attrs.get(PARENT_ATTR)) is None and time.monotonic() < deadline:
            time.sleep(0.5)  # user_attrs reads the storage each time
        if parent is None:
            raise TuneError(f"study {self.study_name!r} has no MLflow parent run (the worker that created it died "
                            "before recording one); start a new study with --study")
        return parent

    def log_trial(self, number, values, value, reports, state, elapsed) -> None:
        from mlflow.entities import Metric

        run = self.client.create_run(
            self.experiment_id, run_name=f"{self.study_name}-trial-{number}",
            tags={"mlflow.parentRunId": self.parent_run_id, "tunesmith.study": self.study_name,
                  "tunesmith.trial": str(number), "tunesmith.trial_state": state},
        )
        rid = run.info.run_id
        self._params(rid, {k: str(v) for k, v in values.items()})
        now = int(time.time() * 1000)
        metrics = [Metric("eval_metric", float(value), now, 0), Metric("train_seconds", float(elapsed), now, 0)]
        metrics += [Metric("eval_metric_at_step", float(v), now, int(s)) for s, v in reports]
        self.client.log_batch(rid, metrics=metrics)
        self.client.set_terminated(rid, "FINISHED")

    def log_best(self, number, value, values, path: Path) -> None:
        from mlflow.entities import Metric

        self.client.log_batch(self.parent_run_id, metrics=[Metric("best_eval_metric", float(value),
                                                                  int(time.time() * 1000), int(number))])
        for k, v in {"best_trial": number, "best_config": str(path), **{f"best.{k}": v for k, v in values.items()}}.items():
            self._set_tag(k, str(v))
        self.client.set_terminated(self.parent_run_id, "FINISHED")

    def _set_tag(self, key: str, value: str, attempts: int = 5) -> None:
        """Set a parent-run tag; workers finishing together race to insert the same tag (the store's
        select-then-insert raises a unique-constraint error for the loser), so the loser sets it again as an update."""
        from mlflow.exceptions import MlflowException

        for attempt in range(attempts):
            try:
                self.client.set_tag(self.parent_run_id, key, value)
                return
            except MlflowException as exc:
                text = str(exc)
                if attempt == attempts - 1 or not ("UNIQUE constraint" in text or "duplicate key" in text):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params.items()])

"""`training.auto: {budget_minutes: N}`: a small Optuna search before a run's final training.

    cfg, record = search(cfg, eval_only(bundle), run_dir, say=say)   # tunesmith.training.fit calls it

The same machinery as `tunesmith tune` (TPE sampler, median pruner on the eval metric at every evaluation,
`suggest`, `config_with`), without a `search:` block, storage or MLflow runs: the space is built around the values
derived from the data (tunesmith.config.derived), trial 0 is those values, and only the keys the config leaves
unset are searched. Trials train on the train split and are scored on the eval split; the bundle given has no
test split. No trial starts after the budget, and a trial still running when it ends is stopped at its next step
and scored on eval as it stands. The best values go to the final training, on the same train split.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from transformers import TrainerCallback

from tunesmith.config import Config, PrunerKind, SearchParam
from tunesmith.tuning.space import config_with, suggest
from tunesmith.tuning.study import LOWER_IS_BETTER, OptunaPruning, TuneError, make_pruner

Say = Callable[[str], None]
SEARCHED = ("learning_rate", "warmup_ratio", "epochs", "batch_size")


class Deadline(TrainerCallback):
    """Stops a trial at the first step after `deadline` (time.monotonic()), with one last evaluation to score it."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() >= self.deadline and not control.should_training_stop:
            self.stopped = True
            control.should_training_stop = True
            control.should_evaluate = True
        return control


def space_around(cfg: Config, explicit: set[str]) -> dict[str, SearchParam]:
    """The searched keys (those the config leaves unset) with ranges around the config's current values."""
    t = cfg.training
    space = {
        "learning_rate": SearchParam(low=t.learning_rate / 4, high=min(t.learning_rate * 4, 0.5), log=True),
        "warmup_ratio": SearchParam(low=0.0, high=0.2),
        "epochs": SearchParam(low=max(1, int(t.epochs) // 2), high=max(int(t.epochs), 2)),
        "batch_size": SearchParam(choices=sorted({max(4, t.batch_size // 2), t.batch_size, min(64, t.batch_size * 2)})),
    }
    return {f"training.{k}": p for k, p in space.items() if k not in explicit}


def search(cfg: Config, bundle, run_dir: Path, *, say: Say, callbacks: Sequence = (),
           explicit: set[str] = frozenset()) -> tuple[Config, dict]:
    """(cfg with the best trial's values, the search record). `bundle` must have an eval split; its test split is
    not read (tunesmith.training.fit passes it empty)."""
    import optuna

    auto = cfg.training.auto
    if len(bundle.eval) == 0:
        raise TuneError("training.auto: the search scores trials on the eval split, which is empty; set "
                        "data.split.eval or data.eval, or remove training.auto")
    space = space_around(cfg, explicit)
    budget_s = auto.budget_minutes * 60
    metric_key = f"eval_{cfg.training.metric}"
    if not space:
        return cfg, {"status": "nothing to search: the config sets every searched key", "trials": 0, "best": {}}
    default = {k: _current(cfg, k) for k in space}
    base = config_with(cfg, {"training.auto": None, "training.keep_checkpoints": False,
                             "training.save_total_limit": 1})
    trials_dir = Path(run_dir) / "search"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize" if cfg.training.metric in LOWER_IS_BETTER else "maximize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=3),
        pruner=make_pruner(PrunerKind.MEDIAN, 2))
    study.enqueue_trial(default, user_attrs={"default": True})
    say(f"training.auto: searching {', '.join(k.removeprefix('training.') for k in space)} for "
        f"{auto.budget_minutes:g} min on the eval split ({len(bundle.train)} train / {len(bundle.eval)} eval rows)")
    t0 = time.monotonic()
    deadline = t0 + budget_s

    def objective(trial) -> float:
        from tunesmith.training import train

        values = suggest(trial, space)
        trial_cfg = config_with(base, values)
        trial_dir = trials_dir / f"trial-{trial.number:03d}"
        stop, pruning = Deadline(deadline), OptunaPruning(trial, metric_key)
        started = time.monotonic()
        trial.set_user_attr("started_s", round(started - t0, 3))  # after the search began: before the budget, always
        try:
            result = train(trial_cfg, bundle, trial_dir, callbacks=[pruning, stop, *callbacks])
        finally:
            shutil.rmtree(trial_dir, ignore_errors=True)  # trials keep no weights: the final training retrains
        if result.best_metric is None:
            raise optuna.TrialPruned("no evaluation before the budget ran out")
        value = float(result.best_metric)
        state = "cut at the budget" if stop.stopped else "pruned" if pruning.pruned_at is not None else "complete"
        trial.set_user_attr("state", state)
        say(f"  trial {trial.number}: {_fmt(values)} -> {metric_key} {value:.4f} ({state}, "
            f"{time.monotonic() - started:.0f}s)")
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at step {pruning.pruned_at}")
        return value

    study.optimize(objective, n_trials=auto.max_trials, timeout=budget_s, gc_after_trial=True,
                   callbacks=[_stop_at(deadline)])
    elapsed = time.monotonic() - t0
    shutil.rmtree(trials_dir, ignore_errors=True)
    done = [t for t in study.trials if t.value is not None]
    trials = [{"number": t.number, "params": t.params, "value": t.value,
               "state": t.user_attrs.get("state", t.state.name.lower()), "started_s": t.user_attrs.get("started_s")}
              for t in study.trials]
    record = {"budget_minutes": auto.budget_minutes, "elapsed_s": round(elapsed, 1), "metric": metric_key,
              "trials": len(study.trials), "trial_log": trials, "split": "train (fit) / eval (score); test not read"}
    if not done:
        say(f"training.auto: no trial finished an evaluation in {auto.budget_minutes:g} min; training with the "
            "values derived from the data (raise budget_minutes)")
        return cfg, {**record, "status": "no trial scored within the budget", "best": {}}
    best = study.best_trial
    record.update(status="done", best=dict(best.params), best_value=float(best.value), best_trial=best.number,
                  default_value=next((t.value for t in done if t.user_attrs.get("default")), None))
    say(f"training.auto: best of {len(study.trials)} trials in {elapsed:.0f}s: {_fmt(best.params)} "
        f"({metric_key} {best.value:.4f})")
    record["kept_derived"] = best.user_attrs.get("default", False)  # trial 0 won: the derived values stand
    out = cfg.model_copy(deep=True)
    for key, value in best.params.items():
        setattr(out.training, key.removeprefix("training."), value)
    return out, record


def _current(cfg: Config, key: str):
    return getattr(cfg.training, key.removeprefix("training."))


def _stop_at(deadline: float):
    def callback(study, _trial) -> None:
        if time.monotonic() >= deadline:
            study.stop()

    return callback


def _fmt(values: dict) -> str:
    return ", ".join(f"{k.removeprefix('training.')}={v:.3g}" if isinstance(v, float) else
                     f"{k.removeprefix('training.')}={v}" for k, v in values.items())

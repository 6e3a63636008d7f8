"""Fitting a run to its data, around the training stage: settings before, the candidate kept after.

    cfg, settings = fit_settings(cfg, bundle, run_dir, say=say, search=auto_search)   # before `train`
    result, candidate = best_candidate(cfg, bundle, run_dir, result, say=say)        # after it, before `evaluate`

`fit_settings`: epochs, learning rate, warmup and batch size from the training rows through the family's
`training_defaults` hook (tunesmith.config.derived; a family without one keeps the config's values), for the keys the
config leaves unset; then, with `training.auto`, the caller's search (tunesmith.tuning.auto) on the eval split.

`best_candidate`: the fine-tuned model against the family's baseline probe on the eval split (`probe_eval` hook).
When it does not beat the probe there, the head alone is trained too (`training.fallback: head`) and the better
of the two on eval is the run's model; the gates still judge it on the test split, which neither choice reads.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from tunesmith.config import Config, MethodKind
from tunesmith.config.derived import apply_defaults, data_stats, describe, generic_defaults
from tunesmith.families import get as family

Say = Callable[[str], None]
SETTINGS_FILE = "training_settings.json"  # what a resumed run reuses instead of searching again
LOWER_IS_BETTER = ("loss", "rmse", "mae")


def eval_only(bundle):
    """A shallow copy of `bundle` whose test split is empty (the eval split's columns, no rows): what a search or an
    eval comparison gets, so it cannot read a test row."""
    small = copy.copy(bundle)
    small.test = bundle.eval.iloc[0:0]
    return small


def derive_settings(cfg: Config, bundle) -> tuple[Config, dict]:
    """`cfg` with the data-derived values for the training keys it leaves unset, and the record of each key."""
    task = family(cfg.task)
    stats = data_stats(bundle.train, label_column=task.label_column if task.labeled else None)
    derived = (task.training_defaults or generic_defaults)(stats, cfg)
    fitted, record = apply_defaults(cfg, derived)
    return fitted, {"stats": stats.to_dict(), "keys": record, "rule": "family" if task.training_defaults else "generic"}


def fit_settings(cfg: Config, bundle, run_dir: Path, *, say: Say, search: Callable | None = None,
                 callbacks: Sequence = (), resume: bool = False, record: bool = True) -> tuple[Config, dict]:
    """The config the run trains with, and the record written to run_dir/training_settings.json (metrics.json too).

    `search(cfg, bundle, run_dir, say=, callbacks=) -> (cfg, record)` runs when the config has `training.auto`; it
    gets the bundle without its test split. A resumed run reuses the recorded values (no second search).
    The config returned has no `training.auto` (its values are fixed now); `record=False` writes nothing.
    """
    path = Path(run_dir) / SETTINGS_FILE
    if resume and path.is_file():
        settings = json.loads(path.read_text(encoding="utf-8"))
        fitted = _with_values(cfg, {k: v["value"] for k, v in settings["keys"].items()})
        say("training settings: reused from the interrupted run (" + SETTINGS_FILE + ")")
        fitted.training.auto = None
        return fitted, settings
    fitted, settings = derive_settings(cfg, bundle)
    if cfg.training.auto is not None:
        if search is None:
            settings["search"] = {"status": "not run: this caller runs no search (use `tunesmith run`)"}
            say("training.auto: no search in this caller; training with the values derived from the data")
        else:
            fitted, settings["search"] = search(fitted, eval_only(bundle), Path(run_dir), say=say,
                                                callbacks=callbacks, explicit=_explicit(settings))
            trials = settings["search"]["trials"]
            for key, value in settings["search"].get("best", {}).items():
                entry = settings["keys"][key.removeprefix("training.")]
                if settings["search"].get("kept_derived"):  # trial 0 (these values) was the best
                    entry["why"] += f"; kept by the search (trial 0 best of {trials} on the eval split)"
                else:
                    entry.update(value=value, source="search", why=f"best of {trials} trials on the eval split")
    for line in describe(settings["keys"]):
        say(f"training: {line}")
    if record:
        from tunesmith.io import atomic_write_text

        atomic_write_text(path, json.dumps(settings, indent=2, default=str))
    fitted.training.auto = None
    return fitted, settings


def _explicit(settings: dict) -> set[str]:
    """Keys the search leaves alone: those the config set, and a schedule the config pinned."""
    return {k for k, v in settings["keys"].items() if v["source"] == "config"}


def _with_values(cfg: Config, values: dict) -> Config:
    out = cfg.model_copy(deep=True)
    for key, value in values.items():
        setattr(out.training, key, value)
    return out


def _better(a: float, b: float, metric: str) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b


def best_candidate(cfg: Config, bundle, run_dir: Path, result, *, say: Say,
                   callbacks: Sequence = ()) -> tuple[object, dict | None]:
    """(the TrainResult the run goes on with, the record of the choice; None when nothing was compared).

    The chosen model is always run_dir/model; a candidate not chosen is kept in run_dir/candidates/<name>/model.
    """
    task = family(cfg.task)
    metric = cfg.training.metric
    if task.probe_eval is None or result.best_metric is None or len(bundle.eval) == 0:
        return result, None
    probe = task.probe_eval(cfg, eval_only(bundle))
    if probe is None or not math.isfinite(probe):
        return result, None
    tuned = float(result.best_metric)
    record = {"metric": f"eval {metric}", "probe": probe, "fine_tuned": tuned, "chosen": "fine-tuned"}
    if not _better(probe, tuned, metric):  # a tie is no loss: the uplift gates judge it on test
        record["why"] = f"the fine-tuned model is not below the probe on eval ({tuned:.4f} vs {probe:.4f} {metric})"
        return result, record
    say(f"fine-tuning did not beat the {task.baseline_name} on the eval split: {tuned:.4f} vs {probe:.4f} {metric}")
    kind = MethodKind(cfg.method.kind)
    refusal = ("training.fallback: off" if cfg.training.fallback == "off" else
               "the run already trained the head alone" if kind is MethodKind.HEAD else
               f"{task.kind} has no head-only method" if MethodKind.HEAD not in task.methods else
               "training.privacy: a second model would spend the privacy budget again"
               if cfg.training.privacy is not None else
               "method.kind: distill: the student is the point of the run" if kind is MethodKind.DISTILL else None)
    if refusal:
        record["why"] = f"fine-tuned {tuned:.4f} < probe {probe:.4f} on eval; no other candidate ({refusal})"
        say(f"keeping the fine-tuned model ({record['why']}); the gates decide")
        return result, record
    say("training the head alone on the frozen base (the probe's equivalent) as a second candidate")
    head_cfg, head_settings = _head_config(cfg, bundle)
    from tunesmith.training.run import train

    head_dir = Path(run_dir) / "candidates" / "head-only"
    if head_dir.exists():
        shutil.rmtree(head_dir)
    head = train(head_cfg, bundle, head_dir, callbacks=list(callbacks))
    head_score = float(head.best_metric) if head.best_metric is not None else float("nan")
    record.update(head_only=head_score, head_only_settings=head_settings)
    if math.isfinite(head_score) and _better(head_score, tuned, metric):
        _swap(Path(run_dir), head_dir, Path(run_dir) / "candidates" / "fine-tuned")
        head.model_dir = Path(run_dir) / "model"
        record["chosen"] = "head-only"
        record["why"] = (f"fine-tuned {tuned:.4f} did not beat the probe ({probe:.4f}) on eval; the head-only model "
                         f"scored {head_score:.4f} there, the better candidate (fine-tuned kept in "
                         "candidates/fine-tuned/model)")
        say(f"candidate: head-only ({record['why']}); the gates decide whether it registers")
        return head, record
    record["why"] = (f"fine-tuned {tuned:.4f} did not beat the probe ({probe:.4f}) on eval, and the head-only "
                     f"model did no better ({head_score:.4f}; kept in candidates/head-only/model)")
    say(f"candidate: fine-tuned ({record['why']}); the gates decide whether it registers")
    return result, record


def _head_config(cfg: Config, bundle) -> tuple[Config, dict]:
    """The config of the head-only candidate: method head, the run's schedule (epochs, batch, warmup) and the rule's
    learning rate for a head (the run's own rate was chosen, or set, for its method)."""
    raw = cfg.model_copy(deep=True)
    raw.method.kind = MethodKind.HEAD
    raw.training.auto = None
    raw.training.__pydantic_fields_set__.discard("learning_rate")
    raw.training.__pydantic_fields_set__.update(("epochs", "batch_size", "warmup_ratio"))
    fitted, settings = derive_settings(raw, bundle)
    return fitted, {k: v["value"] for k, v in settings["keys"].items()}


def _swap(run_dir: Path, chosen_run: Path, keep_as: Path) -> None:
    """Make `chosen_run`/model the run's model/ and keep the run's own model (and LoRA adapter) under `keep_as`."""
    keep_as.mkdir(parents=True, exist_ok=True)
    for name in ("model", "adapter"):
        if (run_dir / name).exists():
            shutil.move(str(run_dir / name), str(keep_as / name))
    shutil.move(str(chosen_run / "model"), str(run_dir / "model"))

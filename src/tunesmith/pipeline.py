"""The stages chained: validate -> train -> evaluate -> gate -> report -> log -> register.

    tunesmith run examples/sentiment/config.yaml

Each step is a call into its stage's function; this module only decides the run folder and the order.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunesmith.config import Config, MethodKind
from tunesmith.families import get as family

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class RunOutcome:
    """What `run` produced; `passed` decides the CLI's exit code."""

    run_dir: Path
    passed: bool
    decision: Any
    eval_report: Any
    train_result: Any
    data_report: Any
    mlflow_run_id: str | None = None
    registered_version: Any = None
    timings: dict[str, float] = field(default_factory=dict)


def runs_root(cfg: Config) -> Path:
    return Path(cfg.output_dir) / cfg.name


def new_run_dir(cfg: Config) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = runs_root(cfg) / stamp
    n = 1
    while run_dir.exists():  # two runs in the same second; zero-padded so names keep sorting by time
        run_dir = runs_root(cfg) / f"{stamp}-{n:03d}"
        n += 1
    run_dir.mkdir(parents=True)
    return run_dir


# What a run folder holds before any stage has written to it: such a folder says nothing and is removed on failure.
_BOOKKEEPING = frozenset({"config.yaml"})


@contextmanager
def removed_if_unused(run_dir: Path, *, fresh: bool = True):
    """Around the stages of a new run folder: if they fail before writing anything, the folder goes too.

    A failed `validate` or a config the data refuses would otherwise leave empty run folders behind; a folder
    that holds a data card, checkpoints or a report stays (it says why the run failed). `fresh=False` (a folder
    the user named, or one being resumed) is never removed.
    """
    try:
        yield run_dir
    except BaseException:
        if fresh and run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= _BOOKKEEPING:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def latest_resumable_run_dir(cfg: Config) -> Path | None:
    """The newest unfinished run of this config's name with a complete checkpoint: the one `--resume` continues.

    Folders written by `validate` or `evaluate`, runs killed before their first checkpoint, and finished runs
    (they have `model/`) are skipped.
    """
    from tunesmith.training import find_last_complete_checkpoint

    root = runs_root(cfg)
    if not root.is_dir():
        return None
    runs = [p for p in sorted(root.iterdir(), key=lambda p: p.name)
            if not (p / "model").exists() and find_last_complete_checkpoint(p / "checkpoints") is not None]
    return runs[-1] if runs else None


def prepare_for_run(cfg: Config, out_dir: Path, *, resume: bool, fitted: bool = False):
    """The data for a run. On resume the data is checked against the interrupted run before anything in its
    folder (data card, quarantine) is rewritten; `fitted`: the run trained with the settings it recorded
    (tunesmith.training.fit), so those are what is checked."""
    from tunesmith.data import prepare_data
    from tunesmith.training import check_resumable

    check_model_weights(cfg)  # before minutes of data checks: a pickle-only base or teacher is refused now
    if resume:
        bundle = with_canaries(cfg, prepare_data(cfg, None))
        if fitted:
            from tunesmith.training.fit import fit_settings

            cfg = fit_settings(cfg, bundle, out_dir, say=_quiet, resume=True, record=False)[0]
        check_resumable(cfg, bundle, out_dir)
    return with_canaries(cfg, prepare_data(cfg, out_dir), out_dir)


def with_canaries(cfg: Config, bundle, run_dir: Path | None = None):
    """The bundle with `evaluation.privacy.canaries` planted in a copy of its train split (the record in
    run_dir/canaries.json); the bundle itself when the config plants none. Seeded: every rank and a resume plant
    the same rows."""
    from tunesmith.evaluation.privacy import plant_canaries

    return plant_canaries(cfg, bundle, family(cfg.task).privacy, run_dir)[0]


def check_model_weights(cfg: Config) -> None:
    """Refuse a local model.base / distillation teacher dir that holds only pickle weights (UnsafeWeights), unless
    model.allow_pickle_weights; hub ids and registered teachers are checked where they load."""
    from tunesmith.config import MethodKind
    from tunesmith.hub import refuse_pickle_weights

    allow = cfg.model.allow_pickle_weights
    if Path(cfg.model.base).expanduser().is_dir():
        refuse_pickle_weights(Path(cfg.model.base).expanduser(), key="model.base", allow=allow)
    teacher = cfg.method.distill.teacher if MethodKind(cfg.method.kind) is MethodKind.DISTILL else None
    if teacher and Path(teacher).expanduser().is_dir():
        refuse_pickle_weights(Path(teacher).expanduser(), key="method.distill.teacher", allow=allow)


def pick_run_dir(cfg: Config, *, resume: bool, run_dir: str | None) -> Path:
    if run_dir:
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    if resume:
        found = latest_resumable_run_dir(cfg)
        if found is None:
            raise FileNotFoundError(
                f"--resume: no interrupted run of {cfg.name!r} under {runs_root(cfg)} (none has a complete "
                "checkpoint and no model/); run without --resume, or name one with --run-dir"
            )
        return found
    return new_run_dir(cfg)


def _timed(timings: dict, name: str):
    class _T:
        def __enter__(self):
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = round(time.perf_counter() - self.t0, 2)

    return _T()


def run(cfg: Config, *, resume: bool = False, run_dir: str | None = None, say: Say = _quiet,
        callbacks: list | None = None, search: Callable | None = None) -> RunOutcome:
    """Every stage in order. Registers a `challenger` version only when every gate passes.

    Training keys the config leaves unset are derived from the data (tunesmith.training.fit); `search` is the
    `training.auto` search (tunesmith.tuning.auto.search, which `tunesmith run` passes); when fine-tuning does not
    beat the baseline probe on eval, the better of it and a head-only model is evaluated and gated.
    """
    from tunesmith.config.loading import write_run_config
    from tunesmith.evaluation import evaluate, gate, write_report
    from tunesmith.hub import resolve_model
    from tunesmith.ops.cost import RunUsage
    from tunesmith.registry import collect_lineage, log_run, model_dir_for, register_version
    from tunesmith.registry.lineage import weights_sha256
    from tunesmith.training import train
    from tunesmith.training.privacy import lineage_tags as privacy_tags
    from tunesmith.training.privacy import privacy_html, privacy_metrics

    timings: dict[str, float] = {}
    usage = RunUsage.start()  # CPU/GPU seconds of the whole run: `cost.*` figures and gates
    out_dir = pick_run_dir(cfg, resume=resume, run_dir=run_dir)
    say(f"run folder: {out_dir}")
    with removed_if_unused(out_dir, fresh=not (resume or run_dir)), _timed(timings, "validate"):
        write_run_config(cfg, out_dir)  # what `tunesmith reproduce` re-runs (data paths made absolute)
        bundle = prepare_for_run(cfg, out_dir, resume=resume, fitted=True)
    say(f"data: {len(bundle.train)} train / {len(bundle.eval)} eval / {len(bundle.test)} test rows, "
        f"{bundle.report.quarantined} quarantined, fingerprint {bundle.fingerprint[:12]}")
    for line in bundle.report.quarantine_examples:
        say(f"  quarantined {line}")
    if cfg.evaluation.privacy and cfg.evaluation.privacy.canaries:
        c = cfg.evaluation.privacy.canaries
        say(f"privacy: {c.count} canaries x {c.repeats} planted in the training copy only (canaries.json)")
    _say_checks(bundle.report.checks, say)

    if cfg.training.backend != "local":  # a provider trains; the gates before and after stay ours
        return _run_with_provider(cfg, bundle, out_dir, say, timings)
    from tunesmith.training.fit import best_candidate, fit_settings

    with _timed(timings, "fit"):
        cfg, settings = fit_settings(cfg, bundle, out_dir, say=say, search=search, callbacks=callbacks or (),
                                     resume=resume)
        write_run_config(cfg, out_dir)  # the values trained with: what `tunesmith reproduce` re-runs
    with _timed(timings, "train"):
        result = train(cfg, bundle, out_dir, resume=resume, callbacks=callbacks)
        result, candidate = best_candidate(cfg, bundle, out_dir, result, say=say, callbacks=callbacks or ())
    usage.add_gpu_stage(timings["train"])
    say(f"trained {cfg.method.kind.value} ({result.precision}) in {result.train_runtime_s:.0f}s, "
        f"{result.train_examples_per_s:.1f} examples/s")

    champion_dir = _champion_dir(cfg, model_dir_for, say)
    task = family(cfg.task)
    say(f"evaluating on the test split: tuned model, {task.baseline_name}" + (", champion" if champion_dir else ""))
    with _timed(timings, "evaluate"):
        report = evaluate(cfg, bundle, result.model_dir, champion_dir=champion_dir,
                          champion_name=f"{cfg.name}@champion", out_dir=out_dir)
        primary = report.primary_metric  # what the family measures significance on (macro_f1, rouge_l, mrr@10, ...)
        distilled = _distill_comparison(cfg, bundle, out_dir, result.model_dir, say)
        flat = {**report.flat_metrics(), **(distilled["flat"] if distilled else {})}
    _ship_files(task, out_dir, result.model_dir)
    with _timed(timings, "privacy"):
        privacy = _privacy(cfg, bundle, result.model_dir, out_dir, say)
    flat.update(privacy.flat_metrics() if privacy else {})
    cost = _cost(cfg, bundle, result.model_dir, usage, say)
    flat.update(cost)
    flat.update(privacy_metrics(result.privacy))  # training.privacy: `privacy.epsilon <= 8` gates the spent budget
    decision = gate(flat, cfg.gates, primary_metric=primary,
                    has_champion=report.has_champion, champion_note=report.champion_note)
    _drift_reference(cfg, bundle, result.model_dir, out_dir)

    base = resolve_model(cfg.model.base, cfg.model.revision)
    lineage = collect_lineage(
        cfg, data_fingerprint=bundle.fingerprint, base_model_path=base.path,
        base_revision=base.pinned_as, gate_decision=decision.to_dict(),
    )
    from tunesmith.data.checks import lineage_tags

    lineage.update(lineage_tags(bundle.report.checks))  # the data gates' outcome travels with the version
    lineage["weights_sha256"] = weights_sha256(result.model_dir)  # `tunesmith reproduce` compares against it
    lineage["cost"] = _cost_block(cfg, cost)  # usage and money travel with the version (registry tag `cost`)
    lineage.update(privacy_tags(result.privacy))  # the DP guarantee (spent epsilon, delta) travels with the version
    lineage["training_settings"] = {k: v["value"] for k, v in settings["keys"].items()}  # derived / searched / set
    if candidate:  # fine-tuned vs the probe on eval, and which candidate the run went on with
        lineage["candidate"] = candidate["chosen"]
        report.notes.append(f"candidate: {candidate['chosen']} ({candidate['why']})")
    if privacy and privacy.canaries:  # the registered weights were trained with planted secrets: say so
        lineage["canaries"] = f"{len(privacy.canaries['items'])} random secrets x {privacy.canaries['repeats']} " \
                              "in the training copy (canaries.json)"
    if distilled:  # the teacher and the synthetic (teacher-labelled) rows travel with the version
        from tunesmith.training.distill import lineage_tags as distill_tags

        lineage.update(distill_tags(distilled["record"]))
    report_path = write_report(
        out_dir, config=cfg, data_report=bundle.report.to_dict(), train_result=result.to_dict(),
        eval_report=report, decision=decision, lineage=lineage,
        extra={"cost": _cost_block(cfg, cost), **({"distillation": distilled} if distilled else {}),
               **({"privacy": privacy.to_dict()} if privacy else {}),
               **({"differential_privacy": result.privacy} if result.privacy else {}),
               "training_settings": settings, **({"candidate": candidate} if candidate else {})},
        extra_sections=[("Cost", _cost_html(cfg, cost)), ("Training settings", _settings_html(settings, candidate)),
                        *([("Distillation", _distill_html(distilled))] if distilled else ()),
                        *([("Privacy", privacy.html())] if privacy else ()),
                        *([("Differential privacy", privacy_html(result.privacy))] if result.privacy else ())],
    )
    say(f"report: {report_path}")

    outcome = RunOutcome(out_dir, decision.passed, decision, report, result, bundle.report, timings=timings)
    _write_runbook(cfg, out_dir, result.model_dir)
    _write_card(cfg, out_dir, result.model_dir, report=report, data=bundle.report.to_dict(), decision=decision,
                lineage=lineage, cost=cost, privacy=privacy.to_dict() if privacy else None)
    with _timed(timings, "register"):
        outcome.mlflow_run_id = log_run(
            cfg, run_dir=out_dir, metrics=flat,  # log_run records the resolved config as params
            artifacts=[p for p in (out_dir / "report.html", out_dir / "metrics.json", out_dir / "data_card.json",
                                   out_dir / "config.yaml", out_dir / "RUNBOOK.md", out_dir / "README.md",
                                   out_dir / "quarantine.jsonl", out_dir / "label_issues.jsonl",
                                   out_dir / "drift_reference.json", out_dir / "canaries.json",
                                   out_dir / "adapter") if p.exists()],
            model_dir=result.model_dir, tags={"gate": "passed" if decision.passed else "failed",
                                                  "data_fingerprint": bundle.fingerprint, **lineage_tags(bundle.report.checks),
                                                  **_environment_tags(lineage)},
            log_history=result.log_history,
        )
        lineage["data_card"] = f"runs:/{outcome.mlflow_run_id}/data_card.json"  # the full dataset card
        if decision.passed and cfg.registry.auto_register:
            outcome.registered_version = register_version(
                cfg.name, run_id=outcome.mlflow_run_id, lineage=lineage, registry=cfg.registry,
                description=f"{cfg.task} fine-tuned from {cfg.model.base} ({cfg.method.kind.value})",
            )
    return outcome


def _run_with_provider(cfg: Config, bundle, out_dir: Path, say: Say, timings: dict) -> RunOutcome:
    """training.backend: openai-compatible: upload the gated data, follow the provider's job, evaluate the result
    through its chat endpoint, gate, and register it as an external version (tunesmith.families.causal_lm.provider)."""
    from tunesmith.contracts import NOT_COMPARABLE
    from tunesmith.data.checks import lineage_tags
    from tunesmith.evaluation import gate, write_report
    from tunesmith.families.causal_lm.provider import evaluate_remote, fine_tune, write_external_model
    from tunesmith.registry import collect_lineage, log_run, model_dir_for, register_version
    from tunesmith.training import TrainResult

    t0 = time.perf_counter()
    with _timed(timings, "train"):
        record = fine_tune(cfg, bundle, out_dir, say)
    elapsed = time.perf_counter() - t0
    model_dir = write_external_model(out_dir, record)
    result = TrainResult(model_dir=model_dir, method="provider", precision="n/a", trainable_params=0,
                         total_params=0, train_runtime_s=elapsed, train_examples_per_s=len(bundle.train) / elapsed,
                         best_metric=None, best_checkpoint=None)
    model = record["provider.fine_tuned_model"]
    say(f"evaluating {model} through the provider's chat endpoint on the test split, against the base model")
    with _timed(timings, "evaluate"):
        report = evaluate_remote(cfg, bundle, model, say)
        if model_dir_for(cfg.name, "champion", registry=cfg.registry) is not None:
            report.champion_status = f"{NOT_COMPARABLE}: a provider-trained version is not compared with the " \
                                     "champion yet (vs_champion gates fail closed)"
        decision = gate(report.flat_metrics(), cfg.gates, primary_metric=report.primary_metric,
                        has_champion=report.has_champion, champion_note=report.champion_note)
    lineage = collect_lineage(cfg, data_fingerprint=bundle.fingerprint, base_model_path=None,
                              base_revision=None, gate_decision=decision.to_dict())
    lineage.update(lineage_tags(bundle.report.checks))
    lineage.update({"tunesmith.external": "true", **{k: str(v) for k, v in record.items()}})
    report_path = write_report(out_dir, config=cfg, data_report=bundle.report.to_dict(), train_result=result.to_dict(),
                               eval_report=report, decision=decision, lineage=lineage)
    say(f"report: {report_path}")
    outcome = RunOutcome(out_dir, decision.passed, decision, report, result, bundle.report, timings=timings)
    with _timed(timings, "register"):
        outcome.mlflow_run_id = log_run(
            cfg, run_dir=out_dir, metrics=report.flat_metrics(),
            artifacts=[p for p in (out_dir / "report.html", out_dir / "metrics.json", out_dir / "data_card.json",
                                   out_dir / "config.yaml", out_dir / "quarantine.jsonl") if p.exists()],
            model_dir=model_dir, tags={"gate": "passed" if decision.passed else "failed",
                                       "data_fingerprint": bundle.fingerprint, "tunesmith.external": "true",
                                       **lineage_tags(bundle.report.checks)},
            log_history=[])
        lineage["data_card"] = f"runs:/{outcome.mlflow_run_id}/data_card.json"
        if decision.passed and cfg.registry.auto_register:
            outcome.registered_version = register_version(
                cfg.name, run_id=outcome.mlflow_run_id, lineage=lineage, registry=cfg.registry,
                description=f"causal-lm fine-tuned by the provider at {cfg.training.provider.base_url} ({model})")
    return outcome


def _write_card(cfg: Config, run_dir: Path, model_dir: Path, **facts) -> None:
    """README.md, the model card in Hugging Face's layout, in the run dir (an MLflow artifact) and the model dir (it
    travels with the registered version and serves as a hub README)."""
    from tunesmith.evaluation.card import model_card
    from tunesmith.io import atomic_write_text

    text = model_card(cfg, **facts)
    for folder in (run_dir, model_dir):
        atomic_write_text(Path(folder) / "README.md", text)


def _write_runbook(cfg: Config, run_dir: Path, model_dir: Path) -> None:
    """RUNBOOK.md in the run dir (an MLflow artifact) and in the model dir (it travels with the registered version):
    the model's alerts, checks and roll-back steps, its own names filled in (tunesmith.ops.runbook)."""
    from tunesmith.io import atomic_write_text
    from tunesmith.ops import runbook

    text = runbook(cfg)
    for folder in (run_dir, model_dir):
        atomic_write_text(Path(folder) / "RUNBOOK.md", text)


def _cost(cfg: Config, bundle, model_dir: Path, usage, say: Say) -> dict[str, float]:
    """The run's `cost.*` figures: its CPU/GPU seconds (and money where `cost:` prices them), and what 1,000 answers
    of the tuned model cost when a price or a gate asks for it."""
    from tunesmith.ops.cost import cost_metrics, measure_per_1k, wants_cost

    per_1k = measure_per_1k(cfg, bundle, model_dir) if wants_cost(cfg) else None
    weights = sum(f.stat().st_size for f in Path(model_dir).rglob("*.safetensors"))
    flat = cost_metrics(cfg, usage.stop(), per_1k_core_seconds=per_1k, weights_bytes=weights)
    cur = cfg.cost.currency
    line = f"cost: {flat['cost.cpu_seconds']:.0f} CPU s" + (f", {flat['cost.gpu_seconds']:.0f} GPU s"
                                                             if flat["cost.gpu_seconds"] else "")
    if "cost.train" in flat:
        line += f" = {flat['cost.train']:.4f} {cur} for this run"
    if "cost.per_1k" in flat:
        line += f"; {flat['cost.per_1k']:.5f} {cur} per 1k answers ({per_1k:.2f} core-s)"
    elif per_1k is not None:
        line += f"; {per_1k:.2f} core-seconds per 1k answers"
    say(line)
    return flat


def _cost_block(cfg: Config, flat: dict) -> dict:
    """metrics.json's `cost`: the figures and the prices they assume."""
    return {"currency": cfg.cost.currency, "prices": cfg.cost.model_dump(exclude={"currency"}),
            **{k.removeprefix("cost."): v for k, v in flat.items()}}


def _cost_html(cfg: Config, flat: dict) -> str:
    import html

    cur = html.escape(cfg.cost.currency)
    rows = [("CPU seconds (process and children, every thread)", f"{flat['cost.cpu_seconds']:.1f}"),
            ("GPU seconds", f"{flat['cost.gpu_seconds']:.1f}"), ("wall seconds", f"{flat['cost.wall_seconds']:.1f}")]
    for key, what in (("cost.train", f"this run, {cur}"), ("cost.per_1k_core_seconds", "core-seconds per 1k answers"),
                      ("cost.per_1k", f"per 1k answers, {cur}"), ("cost.storage_month", f"weights stored a month, {cur}")):
        if key in flat:
            rows.append((what, f"{flat[key]:.6g}"))
    prices = ", ".join(f"{html.escape(k)} {html.escape(str(v))}"
                       for k, v in cfg.cost.model_dump(exclude={"currency"}).items() if v not in (None, {}))
    note = f"Prices assumed ({cur}): {prices}." if cfg.cost.priced else \
        "No prices in the config's <code>cost:</code> section: usage only."
    body = "".join(f"<tr><td>{what}</td><td>{value}</td></tr>" for what, value in rows)
    return f"<p>{note} Answers are timed as <code>tunesmith serve</code> runs them (batches of " \
           f"{cfg.serving.max_batch_size}), priced as the cores held.</p><table>{body}</table>"


def _distill_comparison(cfg: Config, bundle, run_dir: Path, model_dir: Path, say: Say) -> dict | None:
    """method.kind: distill -> teacher vs student vs student-without-KD (quality, latency, size); else None."""
    if MethodKind(cfg.method.kind) is not MethodKind.DISTILL:
        return None
    from tunesmith.training.distill_report import compare_distilled

    doc = compare_distilled(cfg, bundle, run_dir, model_dir, say=say)
    m, gap = doc["metric"], doc["gap"]
    say(f"distill: student {doc['models']['student']['quality'][m]:.4f} vs teacher "
        f"{doc['models']['teacher']['quality'][m]:.4f} {m} (gap {gap['delta']:+.4f}, CI [{gap['ci_low']:+.4f}, "
        f"{gap['ci_high']:+.4f}]); {doc['speedup_b1']:.2f}x faster at batch 1, {doc['size_ratio']:.0%} of its size")
    return doc


def _distill_html(doc: dict) -> str:
    from tunesmith.training.distill_report import html_section

    return html_section(doc)


def _environment_tags(lineage: dict) -> dict:
    """Library versions, hardware and the weights hash as MLflow run tags (the version gets the whole lineage)."""
    from tunesmith.registry import collect_environment

    return {k: lineage[k] for k in (*collect_environment(), "weights_sha256", "config_hash") if k in lineage}


def _say_checks(checks: dict, say: Say) -> None:
    """One line per data check that found something (the data card has every finding)."""
    from tunesmith.data.checks import summarize

    for name, finding in checks.items():
        line = summarize(name, finding)
        if line and finding.get("status") not in ("pass", "n/a", "off"):
            say(f"data check {name} ({finding['status']}): {line}")


def _champion_dir(cfg: Config, model_dir_for, say: Say) -> Path | None:
    """The champion's model dir; None only when the model or its champion alias does not exist yet.

    Anything else (an unreachable tracking server, a failed download) propagates: skipping the comparison
    would let the vs_champion gates pass unchecked.
    """
    found = model_dir_for(cfg.name, "champion", registry=cfg.registry)
    if found is None:
        say(f"no champion of {cfg.name!r} yet: vs_champion gates pass with a note")
    return found


def _ship_files(task, run_dir: Path, model_dir: Path) -> None:
    """Copy what the family's evaluation fitted (calibration.json, thresholds.json) into the model dir, so the
    registered model carries it; its tunesmith.json says so."""
    from tunesmith.io import atomic_write_text
    from tunesmith.model_card import update_model_card

    shipped = []
    for name in task.ships:
        src = run_dir / name
        if src.is_file():
            atomic_write_text(Path(model_dir) / name, src.read_text(encoding="utf-8"))
            shipped.append(name)
    if shipped:
        update_model_card(model_dir, shipped=shipped)


def _privacy(cfg: Config, bundle, model_dir: Path, run_dir: Path, say: Say):
    """`evaluation.privacy` on the trained model (canary exposure, PII extraction, membership AUC); None when the
    config asks for none. `bundle` is what was trained on: its train split holds the planted canaries."""
    if cfg.evaluation.privacy is None:
        return None
    import json

    from tunesmith.evaluation.privacy import CANARIES_FILE, measure_privacy
    from tunesmith.hub import resolve_model

    record = run_dir / CANARIES_FILE
    canaries = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None
    base = resolve_model(cfg.model.base, cfg.model.revision).path
    return measure_privacy(cfg, bundle, model_dir, family(cfg.task).privacy, base_dir=base, canaries=canaries,
                           say=say)


def _drift_reference(cfg: Config, bundle, model_dir: Path, run_dir: Path) -> None:
    """<run>/drift_reference.json (every family with DriftHooks): what `tunesmith monitor` compares served traffic with."""
    from tunesmith.monitoring.reference import write_reference

    write_reference(cfg, bundle, model_dir, run_dir)


def _settings_html(settings: dict, candidate: dict | None) -> str:
    """report.html: each training key with its value and where it came from (config, data, search); the candidate."""
    import html

    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v['value']))}</td><td>{v['source']}</td>"
                   f"<td>{html.escape(v['why'])}</td></tr>" for k, v in settings["keys"].items())
    stats = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in settings["stats"].items())
    out = f"<p>Training rows: {html.escape(stats)}.</p><table><tr><th>key</th><th>value</th><th>from</th>" \
          f"<th>why</th></tr>{rows}</table>"
    search = settings.get("search")
    if search:
        out += f"<p>training.auto: {html.escape(str(search.get('status')))}; {search.get('trials', 0)} trials in " \
               f"{search.get('elapsed_s', 0)} s (budget {search.get('budget_minutes')} min) on the eval split.</p>"
    if candidate:
        out += f"<p>Candidate: <b>{html.escape(candidate['chosen'])}</b>: {html.escape(candidate['why'])}.</p>"
    return out

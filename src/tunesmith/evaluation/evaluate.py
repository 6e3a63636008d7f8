"""The evaluation stage's entry: the config's family scores its tuned model against its baseline (and champion).

    report = evaluate(cfg, bundle, run_dir / "model", champion_dir=champion, out_dir=run_dir)
    decision = gate(report.flat_metrics(), cfg.gates, primary_metric=report.primary_metric,
                    has_champion=report.has_champion, champion_note=report.champion_note)

Each family's report (tunesmith.contracts.EvalReport) carries tuned, baseline and champion metrics with
paired-bootstrap CIs; the champion is compared only on test rows it did not train on. Nothing is written into the
model dir: files a model ships (calibration.json, thresholds.json) go to `out_dir`, and the pipeline copies them.
With `evaluation.safety`, the safety suites ask the base and the tuned model through the family's `SafetyHooks`;
their results are the report's `safety` block and `safety.*` gate metrics.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.contracts import EvalReport
from tunesmith.families import get as family


def evaluate(cfg, bundle, model_dir: str | Path, *, champion_dir: str | Path | None = None,
             champion_name: str = "champion", out_dir: str | Path | None = None, **options) -> EvalReport:
    """Score the tuned model in `model_dir` on `bundle.test` against the family's baseline and optional champion.

    `options` go to the family's evaluation as they are (classification: `baseline_proba`, precomputed probe
    probabilities that skip the probe).

    Raises:
        EvalError: `model_dir` is not a loadable model of the config's family, or its labels differ from the data's.
    """
    task = family(cfg.task)
    cases = None
    if cfg.evaluation.safety is not None:  # a suite that cannot be read is said before any model generates
        from tunesmith.evaluation.safety.suites import load_suites

        cases = load_suites(cfg.evaluation.safety.suites, cfg, limit=cfg.evaluation.safety.limit)
    report = task.evaluate(cfg, bundle, Path(model_dir), champion_dir=champion_dir, champion_name=champion_name,
                           out_dir=out_dir, **options)
    if cases is not None:  # the family's hooks answer; config checks refused evaluation.safety without them
        from tunesmith.evaluation.safety.run import evaluate_safety

        report.safety = evaluate_safety(cfg, task.safety, model_dir, cases=cases)
        if champion_dir is not None:
            report.notes.append("safety suites: base vs tuned only (the champion is not asked)")
    return report

"""The evaluation stage's entry: the config's family scores its tuned model against its baseline (and champion).

    report = evaluate(cfg, bundle, run_dir / "model", champion_dir=champion, out_dir=run_dir)
    decision = gate(report.flat_metrics(), cfg.gates, primary_metric=report.primary_metric,
                    has_champion=report.has_champion, champion_note=report.champion_note)

Each family's report (tunesmith.contracts.EvalReport) carries tuned, baseline and champion metrics with
paired-bootstrap CIs; the champion is compared only on test rows it did not train on. Nothing is written into the
model dir: files a model ships (calibration.json, thresholds.json) go to `out_dir`, and the pipeline copies them.
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
    return family(cfg.task).evaluate(cfg, bundle, Path(model_dir), champion_dir=champion_dir,
                                     champion_name=champion_name, out_dir=out_dir, **options)

"""Evaluate a text regressor on the test split against a ridge probe on the frozen base model (and the champion).

    report = evaluate_regression(cfg, bundle, run_dir / "model", champion_dir=champion)

Metrics: MAE, RMSE, MSE, R², Spearman and Pearson of the predictions against the targets. The baseline is ridge
regression on the base model's mean-pooled embeddings (alpha chosen on the eval split), the regression counterpart of
the classification linear probe. Uplift is tuned - baseline with a paired-bootstrap CI over test rows (for errors a
negative uplift is an improvement).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.contracts import COMPARED, ReportBase
from tunesmith.evaluation.champion import champion_on_unseen, note_unseen_share
from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.significance import (
    IndexStat,
    bootstrap_delta,
    mean_stat,
    pearson_stat,
)

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # ridge strengths, chosen on the eval split
WORST = 8  # test rows with the largest tuned error, shown in the report


@dataclass(kw_only=True)
class RegressionEvalReport(ReportBase):
    rows: int = 0
    baseline_probe: dict = field(default_factory=dict)
    worst: list[dict] = field(default_factory=list)

    def html_sections(self) -> list[tuple[str, str]]:
        from tunesmith.families.regression.report import regression_sections

        return regression_sections(self)


def metric_stats(pred: np.ndarray, y: np.ndarray) -> dict[str, IndexStat]:
    """A resamplable statistic per metric (Spearman: Pearson of the full-set ranks on each resample)."""
    from scipy.stats import rankdata

    err = np.asarray(pred, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    mse = mean_stat(err**2)
    return {"mae": mean_stat(np.abs(err)), "rmse": lambda idx: np.sqrt(mse(idx)), "mse": mse,
            "spearman": pearson_stat(rankdata(pred), rankdata(y)), "pearson": pearson_stat(pred, y)}


def deltas(a: np.ndarray, b: np.ndarray, y: np.ndarray, cfg) -> dict[str, dict]:
    boot = cfg.evaluation.bootstrap
    sa, sb = metric_stats(a, y), metric_stats(b, y)
    return {m: bootstrap_delta(len(y), sa[m], sb[m], samples=boot.samples, confidence=boot.confidence, seed=cfg.seed)
            for m in sa}


def ridge_probe(cfg, bundle) -> tuple[np.ndarray, dict]:
    """Test predictions of ridge regression on the frozen base model's mean-pooled embeddings."""
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    from tunesmith.encoders import split_embeddings

    splits = [bundle.train, bundle.eval, bundle.test]
    xs = split_embeddings(cfg, bundle)
    ys = [f["target"].astype(float).to_numpy() for f in splits]
    scaler = StandardScaler().fit(xs[0])
    xs = [scaler.transform(v) if len(v) else v for v in xs]
    best = None
    for alpha in ALPHAS if len(ys[1]) else (1.0,):
        model = Ridge(alpha=alpha).fit(xs[0], ys[0])
        score = float(np.sqrt(((model.predict(xs[1]) - ys[1]) ** 2).mean())) if len(ys[1]) else float("nan")
        if best is None or score < best[0]:
            best = (score, alpha, model)
    score, alpha, model = best
    info = {"method": "ridge regression on mean-pooled frozen embeddings", "alpha": alpha,
            "eval_rmse": score if len(ys[1]) else None}
    return model.predict(xs[2]) if len(xs[2]) else np.zeros(0), info


def predict_values(model_dir: str | Path, cfg, key: str, texts: list[str]) -> np.ndarray:
    """A saved regressor's predictions for `texts`, in the target's unit (`key` names it in errors)."""
    from tunesmith.families.regression.model import load_regressor, predict

    try:
        model, tokenizer = load_regressor(model_dir, cfg, key)
    except ValueError as exc:
        raise EvalError(str(exc), hint="evaluate it with the config it was trained with") from None
    return predict(model, tokenizer, texts, max_length=cfg.model.max_length, batch_size=cfg.training.eval_batch_size)


def evaluate_regression(cfg, bundle, model_dir: str | Path, *, champion_dir: str | Path | None = None,
                        champion_name: str = "champion", out_dir: str | Path | None = None) -> RegressionEvalReport:
    """Score the tuned regressor, the ridge probe (and the champion) on `bundle.test`.

    Raises:
        EvalError: no test rows, or a model dir that is not a 1-output model.
    """
    from tunesmith.evaluation.gates import primary_name
    from tunesmith.families.regression.model import regression_scores

    test = bundle.test
    if len(test) == 0:
        raise EvalError("the test split is empty: nothing to evaluate", hint="raise data.split.test or set data.test")
    texts, y = test["text"].astype(str).tolist(), test["target"].astype(float).to_numpy()
    tuned = predict_values(model_dir, cfg, "model_dir", texts)
    base, probe = ridge_probe(cfg, bundle)
    boot = cfg.evaluation.bootstrap
    primary = primary_name(cfg.training.metric)
    report = RegressionEvalReport(
        primary_metric="rmse" if primary in ("log_loss", "loss") else primary,
        tuned=regression_scores(tuned, y), baseline=regression_scores(base, y), uplift=deltas(tuned, base, y, cfg),
        rows=len(y), baseline_probe=probe,
        bootstrap={"samples": boot.samples, "confidence": boot.confidence, "seed": cfg.seed},
    )
    order = np.argsort(-np.abs(tuned - y), kind="stable")[:WORST]
    report.worst = [{"source": str(test["_source"].iloc[i]), "text": texts[i], "target": float(y[i]),
                     "tuned": float(tuned[i]), "baseline": float(base[i])} for i in order]
    if champion_dir is not None:
        _compare_champion(report, cfg, champion_dir, champion_name, texts, y, tuned)
    return report


def _compare_champion(report, cfg, champion_dir, name, texts, y, tuned) -> None:
    from tunesmith.families.regression.model import regression_scores

    found = champion_on_unseen(report, champion_dir, name, texts, lambda: predict_values(champion_dir, cfg, "champion", texts))
    if found is None:
        return
    champ, mask = found.scored, found.mask
    report.champion, report.champion_status = regression_scores(champ[mask], y[mask]), COMPARED
    report.vs_champion = deltas(tuned[mask], champ[mask], y[mask], cfg)
    note_unseen_share(report, name, mask)


evaluate = evaluate_regression  # the family's evaluation entry (tunesmith.families.common.family)


def probe_eval(cfg, bundle) -> float | None:
    """The ridge probe's eval RMSE (alpha chosen there, as in `evaluate`) when training.metric is rmse; else None.
    `bundle` may lack its test split."""
    if cfg.training.metric != "rmse" or len(bundle.eval) == 0:
        return None
    return ridge_probe(cfg, bundle)[1]["eval_rmse"]

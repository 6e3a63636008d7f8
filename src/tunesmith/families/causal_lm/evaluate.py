"""Evaluate a chat fine-tune on the test split against its base model (and the champion), side by side.

    report = evaluate_causal_lm(cfg, bundle, run_dir / "model", champion_dir=champion)
    decision = gate(report.flat_metrics(), cfg.gates, primary_metric=report.primary_metric, ...)

Each test conversation's last assistant turn is the reference; every model answers the turns before it with
greedy decoding through the same chat template. Metrics: held-out loss and perplexity (teacher forcing on
the loss tokens of `chat.train_on`), exact match, ROUGE-L, JSON validity (with `evaluation.json_schema`) and the
must-pass regression suite (`evaluation.regression`). Uplift is tuned - base with a paired-bootstrap CI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.contracts import COMPARED, ReportBase
from tunesmith.evaluation.champion import champion_on_unseen, note_unseen_share
from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.significance import bootstrap_delta, mean_stat
from tunesmith.families.causal_lm.suite import check, load_suite
from tunesmith.families.causal_lm.text_metrics import exact_match, json_valid, rouge_l

PRIMARY = "rouge_l"
_PER_ROW = ("rouge_l", "exact_match", "json_valid")  # per-answer scores: bootstrapped


@dataclass(kw_only=True)
class CausalEvalReport(ReportBase):
    samples: list[dict] = field(default_factory=list)  # prompt, reference, base and tuned answers
    regression: dict[str, list[dict]] = field(default_factory=dict)  # model -> case results
    rows: int = 0

    def html_sections(self) -> list[tuple[str, str]]:
        from tunesmith.families.causal_lm.report import causal_sections

        return causal_sections(self)


@dataclass
class Scored:
    metrics: dict
    per_row: dict[str, np.ndarray]
    answers: list[str]
    regression: list[dict]


def load_lm(model_dir: str | Path, cfg, key: str):
    from transformers import AutoModelForCausalLM

    from tunesmith.families.causal_lm.model import load_tokenizer
    from tunesmith.hub import loading

    with loading(str(model_dir), key=key):
        tokenizer = load_tokenizer(str(model_dir), trust_remote_code=cfg.model.trust_remote_code,
                                   template=cfg.chat.template)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), trust_remote_code=cfg.model.trust_remote_code)
    return model, tokenizer


def _score(model_dir, cfg, key: str, prompts, references, suite) -> Scored:
    from tunesmith.families.causal_lm.model import example_losses, generate

    model, tokenizer = load_lm(model_dir, cfg, key)
    full = [(p + [{"role": "assistant", "content": r}], t) for (p, t), r in zip(prompts, references, strict=True)]
    sums, counts = example_losses(model, tokenizer, full, max_length=cfg.model.max_length, train_on=cfg.chat.train_on)
    loss = sum(sums) / max(sum(counts), 1)
    answers = generate(model, tokenizer, prompts, max_new_tokens=cfg.chat.max_new_tokens)
    per_row = {"rouge_l": np.array(rouge_l(answers, references)), "exact_match": np.array(exact_match(answers, references))}
    if cfg.evaluation.json_schema is not None:
        per_row["json_valid"] = np.array(json_valid(answers, cfg.evaluation.json_schema)[0])
    metrics = {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}
    metrics.update({k: float(v.mean()) if len(v) else float("nan") for k, v in per_row.items()})
    results = []
    if suite:
        suite_answers = generate(model, tokenizer, [(c.messages, None) for c in suite],
                                 max_new_tokens=cfg.chat.max_new_tokens)
        results = [check(c, a).to_dict() for c, a in zip(suite, suite_answers, strict=True)]
        metrics["regression_pass_rate"] = sum(r["passed"] for r in results) / len(results)
    return Scored(metrics, per_row, answers, results)


def deltas(a: Scored, b: Scored, cfg, mask: np.ndarray | None = None) -> dict[str, dict]:
    boot = cfg.evaluation.bootstrap
    out = {}
    for name in _PER_ROW:
        if name in a.per_row:
            x, y = a.per_row[name], b.per_row[name]
            if mask is not None:
                x, y = x[mask], y[mask]
            out[name] = bootstrap_delta(len(x), mean_stat(x), mean_stat(y), samples=boot.samples,
                                        confidence=boot.confidence, seed=cfg.seed)
    for name in ("loss", "perplexity", "regression_pass_rate"):  # one number per model: no CI
        if name in a.metrics and name in b.metrics:
            out[name] = {"delta": a.metrics[name] - b.metrics[name]}
    return out


def evaluate_causal_lm(cfg, bundle, model_dir: str | Path, *, champion_dir: str | Path | None = None,
                       champion_name: str = "champion", out_dir: str | Path | None = None) -> CausalEvalReport:
    """Score the tuned model in `model_dir` and the base model (and the champion) on `bundle.test`.

    Raises:
        EvalError: no test rows, or a model / regression suite that cannot be loaded.
    """
    from tunesmith.hub import resolve_model

    test = bundle.test
    if cfg.evaluation.max_eval_rows:
        test = test.iloc[: cfg.evaluation.max_eval_rows]
    if len(test) == 0:
        raise EvalError("the test split is empty: nothing to evaluate", hint="raise data.split.test or set data.test")
    prompts = [(list(m[:-1]), t) for m, t in zip(test["messages"], test["tools"], strict=True)]
    references = [m[-1]["content"] or "" for m in test["messages"]]
    suite = load_suite(cfg.resolve_path(cfg.evaluation.regression)) if cfg.evaluation.regression else []

    tuned = _score(model_dir, cfg, "model_dir", prompts, references, suite)
    base = _score(resolve_model(cfg.model.base, cfg.model.revision).path, cfg, "model.base", prompts, references, suite)
    report = CausalEvalReport(primary_metric=PRIMARY, tuned=tuned.metrics, baseline=base.metrics,
                              uplift=deltas(tuned, base, cfg), rows=len(test),
                              regression={"base": base.regression, "tuned": tuned.regression})
    if len(test) < len(bundle.test):
        report.notes.append(f"generation metrics on the first {len(test)} of {len(bundle.test)} test rows "
                            "(evaluation.max_eval_rows)")
    if champion_dir is not None:
        _compare_champion(report, cfg, champion_dir, champion_name, test, prompts, references, suite, tuned)
    sources = test["_source"].tolist() if "_source" in test else [""] * len(test)
    report.samples = [
        {"source": s, "prompt": p[0][-1]["content"] if p[0] else "", "reference": r, "base": b, "tuned": a,
         "rouge_l_base": float(rb), "rouge_l_tuned": float(ra)}
        for s, p, r, b, a, rb, ra in zip(sources, prompts, references, base.answers, tuned.answers,
                                         base.per_row["rouge_l"], tuned.per_row["rouge_l"], strict=True)
    ][: cfg.evaluation.samples]
    return report


def _compare_champion(report, cfg, champion_dir, name, test, prompts, references, suite, tuned: Scored) -> None:
    """The champion on the test rows it never trained on (its seen_texts.npy), like classification does."""
    found = champion_on_unseen(report, champion_dir, name, test["text"].astype(str).tolist(),
                               lambda: _score(champion_dir, cfg, "champion", prompts, references, suite))
    if found is None:
        return
    report.champion, report.champion_status = found.scored.metrics, COMPARED
    report.vs_champion = deltas(tuned, found.scored, cfg, found.mask)
    note_unseen_share(report, name, found.mask, why=" (per-answer metrics); loss and regression use every row")


evaluate = evaluate_causal_lm  # the family's evaluation entry (tunesmith.families.common.family)

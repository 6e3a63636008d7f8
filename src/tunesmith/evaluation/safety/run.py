"""Ask the base and the tuned model every prompt of the safety suites and measure (`evaluation.safety`).

    report.safety = evaluate_safety(cfg, task.safety, run_dir / "model")   # tunesmith.evaluation.evaluate does it

Rates per model over the must-refuse prompts (harmful, jailbreak-wrapped, personal-data), per category, the share of
personal-data answers with personal data in them, the share of injections followed and of harmless prompts refused.
`safety.refusal_drop` is base - tuned refusal rate with a paired bootstrap over the prompts (both models answer the
same ones). Every prompt either model failed is kept with both answers for the report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.safety import JUDGE_KEY
from tunesmith.evaluation.safety.cases import (
    BENIGN,
    HARMFUL,
    INJECTION,
    JAILBREAK,
    MUST_REFUSE,
    PERSONAL_DATA,
    Case,
)
from tunesmith.evaluation.safety.scoring import judge_question, refusal_regex, verdict
from tunesmith.evaluation.safety.suites import load_suites
from tunesmith.evaluation.significance import bootstrap_delta, mean_stat

_CATEGORY_RATES = {HARMFUL: "harmful_refusal_rate", JAILBREAK: "jailbreak_refusal_rate",
                   PERSONAL_DATA: "personal_data_refusal_rate"}


def evaluate_safety(cfg, hooks, model_dir: str | Path, *, base_dir: str | Path | None = None,
                    cases: list[Case] | None = None) -> dict:
    """The `safety` block of an evaluation report: rates, the refusal drop with its CI, and every failed prompt.

    `hooks` is the family's `SafetyHooks`; the base is `model.base` unless `base_dir` is given.

    Raises:
        EvalError: a suite that cannot be read (file:line), or a model that cannot be loaded.
    """
    from tunesmith.hub import resolve_model

    settings = cfg.evaluation.safety
    cases = cases if cases is not None else load_suites(settings.suites, cfg, limit=settings.limit)
    if base_dir is None:
        base_dir = resolve_model(cfg.model.base, cfg.model.revision).path
    conversations = [c.messages for c in cases]
    tuned_answers = hooks.answers(Path(model_dir), cfg, "model_dir", conversations, settings.max_new_tokens)
    base_answers = hooks.answers(Path(base_dir), cfg, "model.base", conversations, settings.max_new_tokens)
    refusal = refusal_regex(settings.refusal_patterns)
    keywords = tuple(settings.policy_keywords)
    tuned_judged, base_judged = (judge(cfg, hooks, cases, a) for a in (tuned_answers, base_answers))
    tuned = [verdict(c, a, refusal, keywords, j) for c, a, j in zip(cases, tuned_answers, tuned_judged, strict=True)]
    base = [verdict(c, a, refusal, keywords, j) for c, a, j in zip(cases, base_answers, base_judged, strict=True)]
    tuned_rates, base_rates = rates(cases, tuned), rates(cases, base)
    metrics = {f"safety.{k}": v for k, v in tuned_rates.items()}
    metrics.update({f"baseline.safety.{k}": v for k, v in base_rates.items()})
    drop = refusal_drop(cases, base, tuned, cfg)
    if drop:
        metrics.update({f"safety.refusal_drop{'' if k == 'delta' else '_' + k}": v for k, v in drop.items()})
    rows = [{"name": c.name, "category": c.category, "source": c.source, "request": c.request,
             "prompt": c.messages[-1]["content"], "base": {"answer": ba, **bv}, "tuned": {"answer": ta, **tv}}
            for c, ba, bv, ta, tv in zip(cases, base_answers, base, tuned_answers, tuned, strict=True)]
    return {"suites": list(settings.suites), "prompts": len(cases), "judge": settings.judge,
            "counts": {cat: sum(c.category == cat for c in cases) for cat in dict.fromkeys(c.category for c in cases)},
            "tuned": tuned_rates, "base": base_rates, "refusal_drop": drop, "metrics": metrics,
            "bootstrap": {"samples": cfg.evaluation.bootstrap.samples, "confidence": cfg.evaluation.bootstrap.confidence},
            "failed": [r for r in rows if not (r["base"]["passed"] and r["tuned"]["passed"])],
            "cases": rows}


def judge(cfg, hooks, cases: list[Case], answers: list[str]) -> list[str | None]:
    """The judge model's answer to "did it refuse?" for each refusal-category answer (None: not asked: no judge
    configured, or an injection, which its marker decides)."""
    from tunesmith.hub import ModelNotFound, resolve_model

    ref = cfg.evaluation.safety.judge
    asked = [i for i, c in enumerate(cases) if ref and c.category != INJECTION]
    out: list[str | None] = [None] * len(cases)
    if asked:
        try:
            path = Path(resolve_model(ref).path)
        except ModelNotFound as exc:
            raise EvalError(f"{JUDGE_KEY}: {exc}", hint="a local chat model dir, a hub id or builtin:<name>") from None
        ruled = hooks.answers(path, cfg, JUDGE_KEY, [judge_question(cases[i], answers[i]) for i in asked], 4)
        for i, text in zip(asked, ruled, strict=True):
            out[i] = text
    return out


def rates(cases: list[Case], verdicts: list[dict]) -> dict[str, float]:
    """One model's rates; a rate whose category has no prompt is left out (its gate fails as not measured)."""
    out: dict[str, float] = {}

    def share(category_set, key) -> float | None:
        picked = [v[key] for c, v in zip(cases, verdicts, strict=True) if c.category in category_set]
        return float(np.mean(picked)) if picked else None

    found = {"refusal_rate": share(MUST_REFUSE, "refused"),
             **{name: share((cat,), "refused") for cat, name in _CATEGORY_RATES.items()},
             "pii_leak_rate": share((PERSONAL_DATA,), "pii_found"),
             "injection_success": share((INJECTION,), "injected"),
             "over_refusal_rate": share((BENIGN,), "refused")}
    out.update({k: v for k, v in found.items() if v is not None})
    return out


def refusal_drop(cases: list[Case], base: list[dict], tuned: list[dict], cfg) -> dict[str, float]:
    """base - tuned refusal rate over the must-refuse prompts, paired bootstrap (delta, ci_low, ci_high, p_value)."""
    picked = [i for i, c in enumerate(cases) if c.category in MUST_REFUSE]
    if not picked:
        return {}
    b = np.array([base[i]["refused"] for i in picked], dtype=float)
    t = np.array([tuned[i]["refused"] for i in picked], dtype=float)
    boot = cfg.evaluation.bootstrap
    return bootstrap_delta(len(picked), mean_stat(b), mean_stat(t), samples=boot.samples,
                           confidence=boot.confidence, seed=cfg.seed)

"""report.html sections for causal-lm: base vs tuned metrics, sample answers side by side, the regression suite."""

from __future__ import annotations

from tunesmith.evaluation.html import comparison_table, esc, table


def causal_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for a `CausalEvalReport`."""
    return [("Base vs tuned (test split)", _metrics(r)), ("Sample answers", _samples(r)),
            ("Regression suite", _regression(r))]


def _metrics(r) -> str:
    lead = (f"<p>Test rows: {r.rows}. Answers are greedy generations through the chat template; the reference is "
            f"each conversation's last assistant turn. Primary metric: <b>{esc(r.primary_metric)}</b>. "
            f"Champion: {esc(r.champion_status)}.</p>")
    return lead + comparison_table(r, "base model")


def _samples(r) -> str:
    if not r.samples:
        return "<p class='muted'>no samples (evaluation.samples: 0)</p>"
    rows = [[s["source"], s["prompt"], s["reference"], s["base"], s["rouge_l_base"], s["tuned"], s["rouge_l_tuned"]]
            for s in r.samples]
    return table(["row", "prompt", "reference", "base answer", "ROUGE-L", "tuned answer", "ROUGE-L"], rows)


def _regression(r) -> str:
    tuned, base = r.regression.get("tuned") or [], r.regression.get("base") or []
    if not tuned:
        return "<p class='muted'>no regression suite configured (evaluation.regression)</p>"
    rows = []
    for t, b in zip(tuned, base, strict=False):
        verdict = "PASS" if t["passed"] else "FAIL"
        rows.append([f"<td class='{verdict.lower()}'>{verdict}</td>", t["name"], t["answer"], "; ".join(t["failures"]),
                     "pass" if b["passed"] else "fail"])
    return table(["", "case", "tuned answer", "failures", "base"], rows, raw_cols=frozenset({0}))

"""report.html sections for causal-lm: base vs tuned metrics, sample answers side by side, the regression suite."""

from __future__ import annotations

from tunesmith.evaluation.report import _ci, _e, _table


def causal_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for a `CausalEvalReport`."""
    return [("Base vs tuned (test split)", _metrics(r)), ("Sample answers", _samples(r)),
            ("Regression suite", _regression(r))]


def _metrics(r) -> str:
    header = ["metric", "base model", "tuned", "uplift [CI]"]
    if r.champion is not None:
        header += ["champion", "vs champion [CI]"]
    rows = []
    for m, v in r.tuned.items():
        row = [m, r.baseline.get(m), v, _ci(r.uplift.get(m))]
        if r.champion is not None:
            row += [r.champion.get(m), _ci((r.vs_champion or {}).get(m))]
        rows.append(row)
    lead = (f"<p>Test rows: {r.rows}. Answers are greedy generations through the chat template; the reference is "
            f"each conversation's last assistant turn. Primary metric: <b>{_e(r.primary_metric)}</b>. "
            f"Champion: {_e(r.champion_status)}.</p>")
    return lead + _table(header, rows)


def _samples(r) -> str:
    if not r.samples:
        return "<p class='muted'>no samples (evaluation.samples: 0)</p>"
    rows = [[s["source"], s["prompt"], s["reference"], s["base"], s["rouge_l_base"], s["tuned"], s["rouge_l_tuned"]]
            for s in r.samples]
    return _table(["row", "prompt", "reference", "base answer", "ROUGE-L", "tuned answer", "ROUGE-L"], rows)


def _regression(r) -> str:
    tuned, base = r.regression.get("tuned") or [], r.regression.get("base") or []
    if not tuned:
        return "<p class='muted'>no regression suite configured (evaluation.regression)</p>"
    rows = []
    for t, b in zip(tuned, base, strict=False):
        verdict = "PASS" if t["passed"] else "FAIL"
        rows.append([f"<td class='{verdict.lower()}'>{verdict}</td>", t["name"], t["answer"], "; ".join(t["failures"]),
                     "pass" if b["passed"] else "fail"])
    return _table(["", "case", "tuned answer", "failures", "base"], rows, raw_cols=frozenset({0}))

"""The safety suites in report.html (rates base vs tuned, the refusal drop with its CI, every failed prompt with
both answers, escaped) and in the model card (markdown lines)."""

from __future__ import annotations

from tunesmith.evaluation.html import ci, esc, table
from tunesmith.evaluation.safety import RATES
from tunesmith.evaluation.safety.cases import JAILBREAK

_WHAT = {"refusal_rate": "refusal rate (must-refuse prompts)", "harmful_refusal_rate": "refusal rate: harmful requests",
         "jailbreak_refusal_rate": "refusal rate: jailbreak-wrapped requests",
         "personal_data_refusal_rate": "refusal rate: personal-data requests",
         "pii_leak_rate": "personal data in answers (lower is better)",
         "injection_success": "prompt injections followed (lower is better)",
         "over_refusal_rate": "harmless prompts refused (lower is better)"}


def _lead(s: dict) -> str:
    counts = ", ".join(f"{n} {cat}" for cat, n in (s.get("counts") or {}).items())
    return (f"{s.get('prompts', 0)} prompts ({counts}) from {', '.join(s.get('suites') or [])}; greedy answers of the "
            "base and the tuned model, scored offline (refusal patterns, policy keywords, PII detectors, injection "
            "markers).")


def _drop_text(s: dict) -> str:
    drop = s.get("refusal_drop") or {}
    if not drop:
        return "no must-refuse prompt: no refusal drop"
    conf = (s.get("bootstrap") or {}).get("confidence", 0.95)
    return f"refusal drop (base - tuned): {ci(drop)} ({conf:.0%} paired bootstrap over the must-refuse prompts)"


def _shown_prompt(row: dict) -> str:
    return f"{row['request']} (wrapped)" if row["category"] == JAILBREAK else row["prompt"]


def safety_html(s: dict) -> str:
    """The report.html section of a report's `safety` block."""
    rates = [[_WHAT[m], s["base"].get(m), s["tuned"].get(m)] for m in RATES if m in s["tuned"]]
    out = [f"<p>{esc(_lead(s))}</p>", table(["metric", "base", "tuned"], rates), f"<p><b>{esc(_drop_text(s))}</b></p>"]
    failed = s.get("failed") or []
    tuned_failed = sum(not r["tuned"]["passed"] for r in failed)
    out.append(f"<h3>Failed prompts: {tuned_failed} by the tuned model, "
               f"{sum(not r['base']['passed'] for r in failed)} by the base</h3>")
    if not failed:
        return "".join([*out, "<p class='muted'>none: both models answered every prompt safely</p>"])
    rows = []
    for r in sorted(failed, key=lambda r: r["tuned"]["passed"]):  # the tuned model's failures first
        cells = ["PASS" if r[m]["passed"] else "FAIL" for m in ("tuned", "base")]
        rows.append([*(f"<td class='{c.lower()}'>{c}</td>" for c in cells), r["category"],
                     f"{r['name']} ({r['source']})", _shown_prompt(r), r["base"]["answer"], r["tuned"]["answer"],
                     "; ".join(f"{m}: {r[m]['why']}" for m in ("tuned", "base") if r[m]["why"])])
    out.append(table(["tuned", "base", "category", "case", "prompt", "base answer", "tuned answer", "why"], rows,
                     raw_cols=frozenset({0, 1})))
    return "".join(out)


def safety_card(s: dict, md) -> list[str]:
    """Model-card lines of a report's `safety` block; `md` makes a value safe in a markdown cell."""
    def num(v) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    lines = ["### Safety suites", "", md(_lead(s)), "", "| metric | base | tuned |", "|---|---|---|"]
    lines += [f"| {md(_WHAT[m])} | {num(s['base'].get(m))} | {num(s['tuned'].get(m))} |" for m in RATES
              if m in s["tuned"]]
    failed = s.get("failed") or []
    lines += ["", md(_drop_text(s)) + ".", "",
              f"Failed prompts: {sum(not r['tuned']['passed'] for r in failed)} by the tuned model, "
              f"{sum(not r['base']['passed'] for r in failed)} by the base (each with both answers in report.html).", ""]
    return lines

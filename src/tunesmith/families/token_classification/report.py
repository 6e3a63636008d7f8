"""report.html sections for token classification: entity P/R/F1 tuned vs word probe (and champion), per type, errors."""

from __future__ import annotations

from tunesmith.evaluation.html import comparison_table, esc, table, value_html
from tunesmith.families.token_classification.metrics import TOKEN_METRICS


def token_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for a `TokenEvalReport`."""
    return [("Baseline vs tuned (test split, entity level)", _metrics(r)), ("Per entity type", _per_type(r)),
            ("Sentences the tuned model gets wrong", _errors(r))]


def _metrics(r) -> str:
    conf = f"{r.bootstrap.get('confidence', 0.95):.0%}"
    lead = (f"<p>Test sentences: {esc(r.tuned.get('sentences'))}, gold entities: {esc(r.tuned.get('entities'))}. "
            "Entities match when type and both boundaries match (seqeval strict, IOB2); micro averages pool every "
            f"entity, macro averages are the mean over types. CIs: {conf} paired bootstrap over "
            f"{esc(r.bootstrap.get('samples'))} resamples of test sentences. Primary metric: <b>{esc(r.primary_metric)}"
            f"</b>. Champion: {esc(r.champion_status)}.</p>")
    base = ("<p>Base model: the base encoder has no token head, so the baseline is the best the frozen encoder does "
            "with a linear tagger fitted on its word vectors (nothing of the encoder is trained).</p>")
    probe = f"<div class='muted'>Baseline: {value_html(r.baseline_probe)}</div>" if r.baseline_probe else ""
    return lead + comparison_table(r, "baseline (word probe)", metrics=TOKEN_METRICS) + base + probe


def _per_type(r) -> str:
    rows = [[t, s["precision"], s["recall"], s["f1"], s["support"], s["predicted"],
             r.baseline["per_type"].get(t, {}).get("f1")] for t, s in r.tuned["per_type"].items()]
    return table(["type", "precision", "recall", "F1", "gold", "predicted", "baseline F1"], rows)


def _errors(r) -> str:
    if not r.errors:
        return "<p class='muted'>none: every test sentence's entities match</p>"
    rows = [[e["source"], e["text"], "; ".join(e["gold"]), "; ".join(e["tuned"]), "; ".join(e["baseline"])]
            for e in r.errors]
    return table(["row", "text", "gold", "tuned", "baseline"], rows)

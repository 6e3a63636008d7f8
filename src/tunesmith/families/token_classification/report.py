"""report.html sections for token classification: entity P/R/F1 tuned vs word probe (and champion), per type, errors."""

from __future__ import annotations

from tunesmith.evaluation.report import _ci, _e, _table, _value_html
from tunesmith.families.token_classification.metrics import TOKEN_METRICS


def token_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for a `TokenEvalReport`."""
    return [("Baseline vs tuned (test split, entity level)", _metrics(r)), ("Per entity type", _per_type(r)),
            ("Sentences the tuned model gets wrong", _errors(r))]


def _metrics(r) -> str:
    header = ["metric", "baseline (word probe)", "tuned", "uplift [CI]"]
    if r.champion is not None:
        header += ["champion", "vs champion [CI]"]
    rows = []
    for m in TOKEN_METRICS:
        row = [m, r.baseline.get(m), r.tuned.get(m), _ci(r.uplift.get(m))]
        if r.champion is not None:
            row += [r.champion.get(m), _ci((r.vs_champion or {}).get(m))]
        rows.append(row)
    conf = f"{r.bootstrap.get('confidence', 0.95):.0%}"
    lead = (f"<p>Test sentences: {_e(r.tuned.get('sentences'))}, gold entities: {_e(r.tuned.get('entities'))}. "
            "Entities match when type and both boundaries match (seqeval strict, IOB2); micro averages pool every "
            f"entity, macro averages are the mean over types. CIs: {conf} paired bootstrap over "
            f"{_e(r.bootstrap.get('samples'))} resamples of test sentences. Primary metric: <b>{_e(r.primary_metric)}"
            f"</b>. Champion: {_e(r.champion_status)}.</p>")
    base = ("<p>Base model: the base encoder has no token head, so the baseline is the best the frozen encoder does "
            "with a linear tagger fitted on its word vectors (nothing of the encoder is trained).</p>")
    probe = f"<div class='muted'>Baseline: {_value_html(r.baseline_probe)}</div>" if r.baseline_probe else ""
    return lead + _table(header, rows) + base + probe


def _per_type(r) -> str:
    rows = [[t, s["precision"], s["recall"], s["f1"], s["support"], s["predicted"],
             r.baseline["per_type"].get(t, {}).get("f1")] for t, s in r.tuned["per_type"].items()]
    return _table(["type", "precision", "recall", "F1", "gold", "predicted", "baseline F1"], rows)


def _errors(r) -> str:
    if not r.errors:
        return "<p class='muted'>none: every test sentence's entities match</p>"
    rows = [[e["source"], e["text"], "; ".join(e["gold"]), "; ".join(e["tuned"]), "; ".join(e["baseline"])]
            for e in r.errors]
    return _table(["row", "text", "gold", "tuned", "baseline"], rows)

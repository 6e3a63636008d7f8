"""report.html sections for rerankers: tuned cross-encoder vs the base bi-encoder (and champion) with CIs over
queries, and the queries where the tuned model does worst against the baseline."""

from __future__ import annotations

from tunesmith.evaluation.html import comparison_table, esc, table, value_html


def reranking_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for a `RerankEvalReport`."""
    return [("Baseline vs tuned (test queries)", _metrics(r)), ("Queries where the tuned model gains least", _examples(r))]


def _metrics(r) -> str:
    conf = f"{r.bootstrap.get('confidence', 0.95):.0%}"
    lead = (f"<p>Test queries ranked: {r.queries} ({r.candidates} candidates; {r.skipped_queries} skipped). CIs: {conf} "
            f"paired bootstrap over {esc(r.bootstrap.get('samples'))} resamples of queries. Primary metric: "
            f"<b>{esc(r.primary_metric)}</b>. Champion: {esc(r.champion_status)}. The untuned cross-encoder is not shown: "
            "its classifier head is freshly initialised, so its ranking is noise.</p>")
    return lead + comparison_table(r, "baseline (base bi-encoder, cosine)", "tuned (cross-encoder)") + f"<div class='muted'>Baseline: {value_html(r.baseline_model)}</div>"


def _examples(r) -> str:
    rows = [[e["query"], e["baseline_mrr"], e["tuned_mrr"],
             "; ".join(f"[{d['relevance']:g}] {d['document']}" for d in e["tuned_top3"])] for e in r.examples]
    return table(["query", "baseline RR@10", "tuned RR@10", "tuned top 3 ([relevance] document)"], rows)

"""report.html sections for embedding: base vs tuned retrieval metrics with CIs, and queries with their top hit."""

from __future__ import annotations

from tunesmith.evaluation.html import comparison_table, esc, table


def embedding_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for an `EmbeddingEvalReport`."""
    sections = [("Base vs tuned (test split)", _metrics(r))]
    if r.samples:
        sections.append(("Sample queries (top hit)", _samples(r)))
    return sections


def _metrics(r) -> str:
    conf = f"{r.bootstrap.get('confidence', 0.95):.0%}"
    if r.corpus:
        what = (f"{r.queries} test queries retrieve from a corpus of {r.corpus} documents (every positive and hard "
                "negative of every split); relevant = the query's test positives")
    else:
        what = f"{r.queries} scored test pairs: correlation of cosine similarity with the score"
    verdict = _verdict(r)
    lead = (f"<p>{esc(what)}. CIs: {conf} paired bootstrap over {esc(r.bootstrap.get('samples'))} resamples of the "
            f"queries. Primary metric: <b>{esc(r.primary_metric)}</b>. Champion: {esc(r.champion_status)}.</p>"
            f"<p><b>{esc(verdict)}</b></p>")
    return lead + comparison_table(r, "base model")


def _verdict(r) -> str:
    u = r.uplift.get(r.primary_metric) or {}
    if "ci_low" not in u:
        return "no uplift measured"
    m = r.primary_metric
    if u["ci_low"] > 0:
        return f"measured uplift: {m} {u['delta']:+.4f} over the base model (CI above 0)"
    if u["ci_high"] < 0:
        return f"the tuned model is worse than the base model: {m} {u['delta']:+.4f} (CI below 0)"
    return f"no significant uplift over the base model: {m} {u['delta']:+.4f} (CI includes 0)"


def _samples(r) -> str:
    rows = [[s["query"], s["relevant"], s["base_top1"], "hit" if s["base_hit"] else "miss", s["tuned_top1"],
             "hit" if s["tuned_hit"] else "miss"] for s in r.samples]
    return table(["query", "a relevant document", "base top 1", "", "tuned top 1", ""], rows)

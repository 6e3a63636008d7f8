"""report.html sections for embedding: base vs tuned retrieval metrics with CIs, and queries with their top hit."""

from __future__ import annotations

from tunesmith.evaluation.report import _ci, _e, _table


def embedding_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for an `EmbeddingEvalReport`."""
    sections = [("Base vs tuned (test split)", _metrics(r))]
    if r.samples:
        sections.append(("Sample queries (top hit)", _samples(r)))
    return sections


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
    conf = f"{r.bootstrap.get('confidence', 0.95):.0%}"
    if r.corpus:
        what = (f"{r.queries} test queries retrieve from a corpus of {r.corpus} documents (every positive and hard "
                "negative of every split); relevant = the query's test positives")
    else:
        what = f"{r.queries} scored test pairs: correlation of cosine similarity with the score"
    verdict = _verdict(r)
    lead = (f"<p>{_e(what)}. CIs: {conf} paired bootstrap over {_e(r.bootstrap.get('samples'))} resamples of the "
            f"queries. Primary metric: <b>{_e(r.primary_metric)}</b>. Champion: {_e(r.champion_status)}.</p>"
            f"<p><b>{_e(verdict)}</b></p>")
    return lead + _table(header, rows)


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
    return _table(["query", "a relevant document", "base top 1", "", "tuned top 1", ""], rows)

"""HTML pieces every report builds from: escaped cells, tables, images, nested values, CIs, the base-vs-tuned table.

Every value goes through html.escape unless a column is declared raw (already-built HTML).
"""

from __future__ import annotations

import json
from html import escape as _escape
from typing import Any

from tunesmith.io import json_safe


def esc(value: Any) -> str:
    return _escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"
    return str(value)


def table(header: list[str], rows: list[list[Any]], raw_cols: frozenset[int] = frozenset()) -> str:
    """An HTML table; cells are escaped unless their column is in raw_cols (already-built HTML)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            if i in raw_cols:
                cells.append(v)
            else:
                cls = ' class="num"' if isinstance(v, int | float) and not isinstance(v, bool) else ""
                cells.append(f"<td{cls}>{esc(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def img(uri: str | None, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="{uri}">' if uri else f'<p class="muted">no data for {esc(alt)}</p>'


def value_html(value: Any, depth: int = 0) -> str:
    """Nested dicts as nested key/value tables; lists of scalars inline; anything deeper as escaped JSON."""
    if isinstance(value, dict) and value and depth < 3:
        rows = [f"<tr><th>{esc(k)}</th><td>{value_html(v, depth + 1)}</td></tr>" for k, v in value.items()]
        return f"<table>{''.join(rows)}</table>"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return esc(", ".join(fmt(v) for v in value)) or '<span class="muted">none</span>'
    if isinstance(value, dict | list):
        text = json.dumps(json_safe(value), indent=1)
        return f"<pre>{esc(text[:4000])}{'…' if len(text) > 4000 else ''}</pre>"
    return esc(fmt(value))


def ci(stats: dict | None) -> str:
    if not stats:
        return "-"
    text = f"{stats['delta']:+.4f}"
    if "ci_low" in stats and stats["ci_low"] is not None:
        text += f" [{stats['ci_low']:+.4f}, {stats['ci_high']:+.4f}] p={stats['p_value']:.3f}"
    return text




def _interval(value: Any, bounds: Any) -> str:
    """"0.8123 [0.7710, 0.8501]" (a value and its CI; "-" when not measured)."""
    if not isinstance(value, int | float) or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(bounds, list | tuple) and len(bounds) == 2 and all(isinstance(b, int | float) for b in bounds):
        return f"{value:.4f} [{bounds[0]:.4f}, {bounds[1]:.4f}]"
    return f"{value:.4f}"


def slices_html(slices: dict, confidence: float = 0.95) -> str:
    """The report's slice section (`tunesmith.evaluation.slices.slice_report`): per column, each slice's metrics
    (the tuned model's with its CI), the gap between the best and the worst slice with its CI, the worst slice vs
    the champion, and the notes (slices too small to compare)."""
    out = []
    for column, res in slices.items():
        out.append(f"<h3>{esc(column)}</h3>")
        if "error" in res:
            out.append(f"<p class='fail'>{esc(res['error'])}</p>")
            continue
        values = res.get("values") or []
        models = list(dict.fromkeys(k for v in values for k, m in v.items()
                                    if isinstance(m, dict) and k not in ("ci", "vs_champion", "champion")))
        metrics = list(dict.fromkeys(m for v in values for m in (v.get("tuned") or {})))
        champion = any("champion" in v for v in values)
        header = ["value", "rows", "compared"] + [f"{m} {k}" + (" [CI]" if m == "tuned" else "")
                                                  for m in models for k in metrics]
        if champion:
            header += ["champion rows", *(f"champion {k}" for k in metrics), *(f"vs champion {k} [CI]" for k in metrics)]
        rows = []
        for v in values:
            label = v["value"] + (f" ({res['ranges'][v['value']]})" if v["value"] in res.get("ranges", {}) else "")
            row = [label, v["n"], "no (too few rows)" if v.get("small") else "yes"]
            for m in models:
                row += [_interval(v[m].get(k), (v.get("ci") or {}).get(k)) if m == "tuned" else v[m].get(k)
                        for k in metrics]
            if champion:
                row += [v.get("champion_rows"), *((v.get("champion") or {}).get(k) for k in metrics),
                        *(ci((v.get("vs_champion") or {}).get(k)) for k in metrics)]
            rows.append(row)
        out.append(table(header, rows))
        gaps = [[k, _interval(g["gap"], [g["ci_low"], g["ci_high"]]), g["best"], g["worst"], g["slices"]]
                for k, g in (res.get("gap") or {}).items()]
        if gaps:
            out += [f"<p>Gap between the best and the worst slice (tuned model; {confidence:.0%} CI resampling within "
                    "each slice):</p>", table(["metric", "gap [CI]", "best slice", "worst slice", "slices"], gaps)]
        worst = [[k, ci(w), w["slice"], w["rows"]] for k, w in (res.get("worst_vs_champion") or {}).items()]
        if worst:
            out += ["<p>Worst slice vs the champion (tuned - champion on the rows it did not train on):</p>",
                    table(["metric", "delta [CI]", "slice", "rows"], worst)]
        out += [f"<p class='muted'>{esc(note)}</p>" for note in res.get("notes") or []]
    return "".join(out) or "<p class='muted'>no slices configured</p>"


def comparison_table(r, baseline: str, tuned: str = "tuned", metrics=None, scalar=dict) -> str:
    """metric | baseline | tuned | uplift [CI] (| champion | vs champion [CI]) over a report's metrics."""
    base, tuned_values = scalar(r.baseline), scalar(r.tuned)
    champion = scalar(r.champion) if r.champion is not None else None
    header = ["metric", baseline, tuned, "uplift [CI]"] + (["champion", "vs champion [CI]"] if champion is not None else [])
    rows = []
    for m in metrics or list(tuned_values):
        row = [m, base.get(m), tuned_values.get(m), ci(r.uplift.get(m))]
        if champion is not None:
            row += [champion.get(m), ci((r.vs_champion or {}).get(m))]
        rows.append(row)
    return table(header, rows)


def bootstrap_note(r, over: str = "") -> str:
    """"CIs: 95% paired bootstrap over N resamples[ of <over>]" (from the report's bootstrap settings)."""
    return (f"CIs: {r.bootstrap.get('confidence', 0.95):.0%} paired bootstrap over {esc(r.bootstrap.get('samples'))} "
            f"resamples" + (f" of {over}" if over else ""))

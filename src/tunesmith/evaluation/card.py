"""The model card of a run: README.md in Hugging Face's model-card layout (YAML metadata, then the sections), written
into the model dir (it travels with the registered version and works as a hub README) and the run dir.

    text = model_card(cfg, report=eval_report, data=bundle.report.to_dict(), decision=decision, lineage=lineage,
                      cost=cost)

Everything in it is measured by the run or stated in the config (`model_card:` intended use, out-of-scope use,
license, language; the owner from `monitoring.alerts.owner` or `registry.owner`). What was not measured is said
so under Limitations, never left out.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from tunesmith.config import Config

SAFETY = "safety suites (refusals, jailbreaks, prompt injection)"
MEMORIZATION = "memorization and PII extraction"
FAIRNESS = "fairness gates across slices"
NO_PRIVACY = "a differential-privacy guarantee for the training rows (`training.privacy`)"
NOT_MEASURED = (SAFETY, MEMORIZATION, FAIRNESS, "performance on live traffic (see `tunesmith monitor`)", NO_PRIVACY)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return "n/a" if value is None else str(value)


def _md(text: Any) -> str:
    """A value safe inside a markdown table cell or line (no table breaks, no raw HTML)."""
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _metadata(cfg: Config, report, spec) -> dict:
    meta: dict[str, Any] = {}
    if cfg.model_card.license:
        meta["license"] = cfg.model_card.license
    if cfg.model_card.language:
        meta["language"] = list(cfg.model_card.language)
    meta["base_model"] = cfg.model.base
    if spec is not None:
        meta["library_name"] = "sentence-transformers" if spec.flavor == "sentence_transformers" else "transformers"
        meta["pipeline_tag"] = spec.pipeline_task
    meta["tags"] = ["tunesmith", cfg.task, cfg.method.kind.value]
    metrics = [{"type": name, "value": round(float(value), 6), "name": f"{name} (test split)"}
               for name, value in report.tuned.items() if name != "n" and isinstance(value, int | float)
               and not isinstance(value, bool)
               and math.isfinite(float(value))]
    meta["model-index"] = [{"name": cfg.name, "results": [{
        "task": {"type": spec.pipeline_task if spec is not None else cfg.task},
        "dataset": {"name": f"{cfg.name} test split", "type": "custom"},
        "metrics": metrics[:20]}]}]
    return meta


def _results(report) -> list[str]:
    champion = report.champion or {}
    head = "| metric | tuned | baseline | uplift [CI] |" + (" champion |" if champion else "")
    lines = [head, "|---|---|---|---|" + ("---|" if champion else "")]
    for name, value in report.tuned.items():
        if name == "n" or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        up = report.uplift.get(name)
        uplift = "-"
        if isinstance(up, dict) and isinstance(up.get("delta"), int | float):
            uplift = f"{up['delta']:+.4f}" + (f" [{up['ci_low']:+.4f}, {up['ci_high']:+.4f}]"
                                              if isinstance(up.get("ci_low"), int | float) else "")
        row = f"| {_md(name)} | {_fmt(value)} | {_fmt(report.baseline.get(name))} | {uplift} |"
        lines.append(row + (f" {_fmt(champion.get(name))} |" if champion else ""))
    conf = (report.bootstrap or {}).get("confidence")
    if conf:
        lines.append(f"\nCIs: {conf:.0%} paired bootstrap over the test rows ({(report.bootstrap or {}).get('samples')} "
                     "resamples).")
    return lines


def _ci(value: Any, low: Any, high: Any, sign: str = "") -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "n/a"
    text = f"{value:{sign}.4f}"
    if isinstance(low, int | float) and isinstance(high, int | float) and not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:{sign}.4f}, {high:{sign}.4f}]"
    return text


def _slices(report) -> list[str]:
    """Per-slice results (a family that reports slices: value, rows, the tuned model's metrics with CIs and the
    baseline's), the gap between the best and the worst slice with its CI, and the worst slice vs the champion."""
    out = []
    for column, res in (getattr(report, "slices", None) or {}).items():
        if not isinstance(res, dict) or "values" not in res:
            continue
        metrics = sorted({k for v in res["values"] for k in (v.get("tuned") or {})})[:3]
        out += [f"### Slice: {_md(column)}", "", "| value | rows | " + " | ".join(f"tuned {m} [CI] | baseline {m}"
                                                                              for m in metrics) + " |",
                "|---|---|" + "---|---|" * len(metrics)]
        for v in res["values"]:
            cells = [f"{_ci((v.get('tuned') or {}).get(m), *((v.get('ci') or {}).get(m) or (None, None)))} | "
                     f"{_fmt((v.get('baseline') or {}).get(m))}" for m in metrics]
            small = " (too few rows to compare)" if v.get("small") else ""
            out.append(f"| {_md(v.get('value'))}{small} | {v.get('n')} | " + " | ".join(cells) + " |")
        out.append("")
        for m, g in (res.get("gap") or {}).items():
            out.append(f"- Gap in {_md(m)} between the best and the worst slice: {_ci(g['gap'], g['ci_low'], g['ci_high'])}"
                       f" (best {_md(g['best'])}, worst {_md(g['worst'])}, {g['slices']} slices)")
        for m, w in (res.get("worst_vs_champion") or {}).items():
            out.append(f"- Worst slice vs the champion in {_md(m)}: {_md(w['slice'])}, "
                       f"{_ci(w['delta'], w['ci_low'], w['ci_high'], '+')} on {w['rows']} rows")
        out += [f"- {_md(note)}" for note in res.get("notes") or []]
        out.append("")
    return out


def _dp_line(lineage: dict) -> str:
    """The DP-SGD guarantee the run trained under (lineage `privacy.*`, from tunesmith.training.privacy)."""
    if "privacy.epsilon" not in lineage:
        return "- Differential privacy: not measured (trained without `training.privacy`; no formal guarantee)"
    return (f"- Differential privacy: DP-SGD (Opacus), ({_md(lineage['privacy.epsilon'])}, "
            f"{_md(lineage.get('privacy.delta'))})-DP for the train rows (target epsilon "
            f"{_md(lineage.get('privacy.target_epsilon'))}); per-example clip {_md(lineage.get('privacy.max_grad_norm'))}, "
            f"noise multiplier {_md(lineage.get('privacy.noise_multiplier'))}, {_md(lineage.get('privacy.steps'))} "
            f"steps, {_md(lineage.get('privacy.accountant'))} accountant")


def _not_measured(report, privacy: dict | None, lineage: dict) -> list[str]:
    """NOT_MEASURED, less what this run measured: the gap between slices (a family that reports slices), the safety
    suites, evaluation.privacy, and a DP-SGD guarantee (training.privacy, in the lineage)."""
    slices = getattr(report, "slices", None) or {}
    measured = {FAIRNESS: any(isinstance(res, dict) and res.get("gap") for res in slices.values()),
                SAFETY: bool(getattr(report, "safety", None)), MEMORIZATION: bool(privacy),
                NO_PRIVACY: "privacy.epsilon" in lineage}
    return [item for item in NOT_MEASURED if not measured.get(item)]


def _data(data: dict) -> list[str]:
    from tunesmith.data.checks import summarize

    lines = [f"- Rows: {data.get('rows_read')} read, {data.get('rows_used')} used, {data.get('quarantined')} "
             f"quarantined ({_md(data.get('quarantined_by_reason') or {})})",
             f"- Splits: {_md(data.get('split_sizes'))}; fingerprint `{data.get('fingerprint', '')[:16]}`",
             f"- Sources: {', '.join(_md(s.get('path')) for s in data.get('sources', []))}"]
    if data.get("labels"):
        lines.append(f"- Labels (train): {_md((data.get('label_distribution') or {}).get('train'))}")
    findings = [f"  - {name} ({finding.get('status')}): {_md(summarize(name, finding))}"
                for name, finding in (data.get("checks") or {}).items()
                if finding.get("status") not in ("pass", "n/a", "off", None) and summarize(name, finding)]
    lines.append("- Data gates: " + ("all passed" if not findings else "findings below"))
    return lines + findings


def _privacy(doc: dict) -> list[str]:
    """What `evaluation.privacy` measured (canary exposure, PII extraction, membership AUC), and what it did not."""
    lines = ["### Privacy", ""]
    c, e, m = doc.get("canaries"), doc.get("extraction"), doc.get("membership")
    if c:
        lines.append(f"- Canary exposure (\"The Secret Sharer\"): max {_fmt(c.get('max_exposure'))}, mean "
                     f"{_fmt(c.get('mean_exposure'))} of at most {_fmt(c.get('max_possible'))} bits, "
                     f"{len(c.get('items') or [])} random secrets inserted {c.get('repeats')} time(s) each into the "
                     "training copy")
    if e:
        lines.append(f"- PII extraction: the tuned model completed {_fmt(e.get('rate'))} of {e.get('prompts')} PII "
                     "values from their training prefixes" + (f" (base model {_fmt(e['base_rate'])})"
                                                              if "base_rate" in e else "")
                     + (f"; {_md(e['note'])}" if e.get("note") else ""))
    if m:
        ci = f" [{_fmt(m.get('ci_low'))}, {_fmt(m.get('ci_high'))}]" if "ci_low" in m else ""
        lines.append(f"- Membership inference (loss threshold, {m.get('rows')} train vs {m.get('rows')} test rows): "
                     f"ROC AUC {_fmt(m.get('auc'))}{ci}; 0.5 is chance")
    if doc.get("not_measured"):
        lines.append(f"- Not measured: {_md('; '.join(doc['not_measured']))}")
    return [*lines, ""]


def model_card(cfg: Config, *, report, data: dict, decision, lineage: dict, cost: dict | None = None,
               privacy: dict | None = None) -> str:
    """The README.md text of the run's model."""
    from tunesmith.families import get as family

    fam = family(cfg.task)
    spec = fam.mlflow
    owner = cfg.monitoring.alerts.owner or cfg.registry.owner or "not named (monitoring.alerts.owner)"
    card = cfg.model_card
    t = cfg.training
    lines = ["---", yaml.safe_dump(_metadata(cfg, report, spec), sort_keys=False).strip(), "---", "",
             f"# Model card for {cfg.name}", "",
             f"{_md(fam.summary)}, fine-tuned from `{_md(cfg.model.base)}` with tunesmith ({cfg.method.kind.value}).",
             "", "## Model details", "",
             f"- **Owner:** {_md(owner)}", f"- **Family:** {cfg.task}", f"- **Finetuned from:** `{_md(cfg.model.base)}`"
             + (f" (revision `{_md(lineage.get('base_model_revision'))}`)" if lineage.get("base_model_revision") else ""),
             f"- **License:** {_md(card.license or 'not stated (model_card.license); mind the base model license')}",
             f"- **Language:** {_md(', '.join(card.language) or 'not stated (model_card.language)')}",
             "", "## Uses", "", "### Direct use", "",
             _md(card.intended_use or "Not stated in the config (`model_card.intended_use`)."), "",
             "### Out-of-scope use", "",
             _md(card.out_of_scope or "Not stated in the config (`model_card.out_of_scope`)."), "",
             "## Training details", "", "### Training data", "", *_data(data), "", "### Training procedure", "",
             f"- Method: {cfg.method.kind.value}; epochs {t.epochs}, learning rate {t.learning_rate:g}, batch size "
             f"{t.batch_size}, seed {cfg.seed}"]
    lines.append(_dp_line(lineage))
    lines += _settings_lines(lineage, getattr(report, "notes", []))
    if cost:
        lines.append(f"- Compute: {cost.get('cost.cpu_seconds', 0):.0f} CPU s, {cost.get('cost.gpu_seconds', 0):.0f} GPU s"
                     + (f"; {cost['cost.train']:.4g} {cfg.cost.currency} at the config's prices"
                        if "cost.train" in cost else ""))
    lines += ["", "## Evaluation", "", f"Test split: {(data.get('split_sizes') or {}).get('test')} rows the model never "
              f"trained on; baseline: {_md(fam.baseline_name)}.", "", *_results(report), "",
              *_slices(report), *(_privacy(privacy) if privacy else ()),
              f"**Gates:** {'passed' if decision.passed else 'failed'}: {_md(decision.summary)}", ""]
    safety = getattr(report, "safety", None)  # evaluation.safety's block, when the suites ran
    if safety:
        from tunesmith.evaluation.safety.report import safety_card

        lines += safety_card(safety, _md)
    lines += ["## Bias, risks and limitations", "",
              "Not measured in this run: " + "; ".join(_not_measured(report, privacy, lineage)) + ".",
              *[f"- {_md(note)}" for note in getattr(report, "notes", [])[:10]], "",
              "## Lineage", "", "| key | value |", "|---|---|",
              *[f"| {_md(k)} | {_md(v)} |" for k, v in sorted(lineage.items())
                if isinstance(v, str | int | float) and k not in ("gate_summary",)], "",
              "## How to use", "", "```bash", f"tunesmith serve --model {cfg.name}   # after `tunesmith models promote "
              f"{cfg.name}`", "```", "", "```python", "import mlflow",
              f'model = mlflow.pyfunc.load_model("models:/{cfg.name}@champion")', "```", ""]
    return "\n".join(lines)


def _settings_lines(lineage: dict, notes: list[str]) -> list[str]:
    """Training procedure: the settings trained with (set in the config, derived from the data, or searched on
    eval; metrics.json `training_settings` says which and why) and the candidate the run went on with."""
    settings = lineage.get("training_settings")
    shown = ", ".join(f"{k} {v:g}" if isinstance(v, int | float) else f"{k} {v}" for k, v in (settings or {}).items())
    lines = [f"- Settings trained with: {_md(shown)} (config values "
             "win; the others derived from the data or searched on eval, see metrics.json `training_settings`)"] \
        if settings else []
    why = next((n.removeprefix("candidate: ") for n in notes if n.startswith("candidate: ")), None)
    if why:
        lines.append(f"- Candidate: {_md(why)}")
    elif settings:  # the run fitted its settings, but the family or metric has no probe score on eval
        lines.append("- Candidate: fine-tuned (fine-tuned vs the baseline on the eval split: not measured)")
    return lines

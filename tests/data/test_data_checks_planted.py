"""The data gates on a dataset with planted defects: every exact duplicate and leak, >= 99% of ~5%-edited
near-duplicates with <= 1% false positives, >= 95% of each PII type; cleanlab's precision/recall printed."""

from __future__ import annotations

import hashlib
import json

import pytest
from tests.data.data_helpers import make_cfg, write_frame
from tests.data.planted import make_planted

from tunesmith.data import DataChecksFailed, prepare_data


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("planted")
    planted = make_planted()
    paths = {s: write_frame(f, tmp / f"{s}.jsonl") for s, f in planted.frames.items()}
    before = {s: _sha(p) for s, p in paths.items()}
    checks = {"pii": {"policy": "redact"}, "leakage": {"policy": "drop"}, "duplicates": {"policy": "drop"},
              "label_issues": {"review_file": True}}
    bundle = prepare_data(make_cfg(**paths, checks=checks), tmp / "run")
    return planted, paths, before, bundle, tmp / "run"


def _quarantined(run, paths) -> dict[tuple[str, int], str]:
    """(split, row) -> reason, from quarantine.jsonl."""
    by_path = {str(p): s for s, p in paths.items()}
    out = {}
    for line in (run / "quarantine.jsonl").read_text().splitlines():
        r = json.loads(line)
        path, _, lineno = r["source"].rpartition(":")
        out[(by_path[path], int(lineno) - 1)] = r["reason"]
    return out


def test_every_exact_duplicate_and_cross_split_leak_is_caught(planted_run):
    planted, paths, _, bundle, run = planted_run
    q = _quarantined(run, paths)
    assert planted.exact_dups and all(q.get(r) == "duplicate" for r in planted.exact_dups)
    assert planted.exact_leaks and all(q.get(r) == "leak_exact" for r in planted.exact_leaks)
    assert bundle.report.checks["leakage"]["by_kind"]["leak_exact"]["rows"] == len(planted.exact_leaks)
    assert bundle.report.checks["duplicates"]["by_kind"]["duplicate"]["rows"] == len(planted.exact_dups)


def test_near_duplicates_are_caught_with_few_false_positives(planted_run):
    planted, paths, _, bundle, run = planted_run
    q = _quarantined(run, paths)
    near = {r for r, why in q.items() if why in ("near_duplicate", "leak_near")}
    caught = len(near & planted.near_dups) / len(planted.near_dups)
    clean = sum(len(f) for f in planted.frames.values()) - len(planted.near_dups)
    false_pos = len(near - planted.near_dups) / clean
    print(f"\nnear-duplicates: recall {caught:.3f} of {len(planted.near_dups)}, false positives {false_pos:.4f}")
    assert caught >= 0.99
    assert false_pos <= 0.01
    assert all(q[r] == ("near_duplicate" if r[0] == "train" else "leak_near") for r in planted.near_dups & near)


def test_planted_pii_is_found_per_type_and_redacted_in_the_training_copy_only(planted_run):
    planted, paths, before, bundle, _ = planted_run
    finding = bundle.report.checks["pii"]
    assert finding["status"] == "redacted" and "training data was redacted" in finding["note"]
    assert any("training data was redacted" in w for w in bundle.report.warnings)
    assert {s: _sha(p) for s, p in paths.items()} == before  # the source files are untouched
    train_text = "\n".join(bundle.train["text"])
    for kind, rows in planted.pii.items():
        found = finding["by_type"][kind]["rows"]
        leaked = [planted.pii_values[r] for r in rows if planted.pii_values[r] in train_text]
        recall = 1 - len(leaked) / len(rows)
        print(f"PII {kind}: {found} rows found, {len(rows)} planted, recall {recall:.3f}")
        assert recall >= 0.95, leaked[:5]
        assert found >= 0.95 * len(rows)
        assert f"<{kind}>" in train_text
        for example in finding["by_type"][kind]["examples"]:  # masked in the card: never the raw value
            assert example["masked"] not in {planted.pii_values[r] for r in rows}


def test_label_noise_candidates_are_ranked_and_written_for_review(planted_run):
    planted, paths, _, bundle, run = planted_run
    finding = bundle.report.checks["label_issues"]
    review = [json.loads(x) for x in (run / "label_issues.jsonl").read_text().splitlines()]
    assert finding["flagged"] == len(review) > 0 and finding["top"][0]["source"] == review[0]["source"]
    by_path = {str(p): s for s, p in paths.items()}
    flagged = {(by_path[r["source"].rpartition(":")[0]], int(r["source"].rpartition(":")[2]) - 1) for r in review}
    hits = len(flagged & planted.flipped)
    precision, recall = hits / len(flagged), hits / len(planted.flipped)
    print(f"cleanlab label issues ({finding['features']}): flagged {len(flagged)}, planted flips {len(planted.flipped)}, "
          f"precision {precision:.3f}, recall {recall:.3f}")
    assert recall >= 0.5 and precision >= 0.3  # candidates for review: far better than chance (5%)
    assert all(r["suggested"] != r["given"] for r in review if (r["given_label_probability"] < 0.2))


def test_fail_policies_stop_with_every_finding_in_the_card(tmp_path):
    planted = make_planted(seed=1, n_train=300, n_eval=60, n_test=80)
    paths = {s: write_frame(f, tmp_path / f"{s}.jsonl") for s, f in planted.frames.items()}
    cfg = make_cfg(**paths, checks={"pii": {"policy": "fail", "presidio": "off"}, "label_issues": {"enabled": False}})
    with pytest.raises(DataChecksFailed) as caught:
        prepare_data(cfg, tmp_path / "run")
    message = str(caught.value)
    assert message.startswith("data.checks: 2 data check(s) failed")
    assert "data.checks.leakage:" in message and "data.checks.pii:" in message and "hint:" in message
    card = json.loads((tmp_path / "run" / "data_card.json").read_text())
    assert card["checks"]["leakage"]["status"] == "fail" and card["checks"]["pii"]["status"] == "fail"
    assert card["checks"]["duplicates"]["status"] == "warn"  # the default for duplicates within a split

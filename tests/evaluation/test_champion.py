"""Champion comparison: the gates know whether a champion exists, and it is never scored on rows it trained on."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.evaluation.helpers import LABELS, Bundle, save_classifier

from tunesmith.config import GatesConfig
from tunesmith.evaluation import evaluate, gate
from tunesmith.evaluation.champion import MIN_CHAMPION_ROWS
from tunesmith.evaluation.gates import NO_CHAMPION_NOTE
from tunesmith.provenance import SEEN_TEXTS_FILE, text_hashes, write_seen_texts

RULES = GatesConfig.model_validate(["vs_champion.accuracy >= -1", "champion.accuracy >= 0"])


def flat_baseline(bundle) -> np.ndarray:
    return np.full((len(bundle.test), len(bundle.labels)), 0.5)


def run(cfg, bundle, tuned_dir, champion_dir=None):
    report = evaluate(cfg, bundle, tuned_dir, champion_dir=champion_dir, baseline_proba=flat_baseline(bundle))
    decision = gate(report.flat_metrics(), RULES, primary_metric="macro_f1",
                    has_champion=report.has_champion, champion_note=report.champion_note)
    return report, decision


@pytest.fixture(scope="module")
def champion_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """Another classifier over the same labels (a different seed: it predicts differently)."""
    return Path(save_classifier(tiny_model_dir, sorted(LABELS), tmp_path_factory.mktemp("champ"), seed=1))


def copy_of(model_dir: Path, dest: Path) -> Path:
    return Path(shutil.copytree(model_dir, dest))


def test_no_champion_passes_the_champion_rules_with_a_note(eval_cfg, bundle, tuned_dir):
    report, decision = run(eval_cfg, bundle, tuned_dir)
    assert report.champion_status == "none" and not report.has_champion
    assert decision.passed and all(r.note == NO_CHAMPION_NOTE for r in decision.rules)


def test_compared_champion_is_measured(eval_cfg, bundle, tuned_dir, champion_dir):
    report, decision = run(eval_cfg, bundle, tuned_dir, champion_dir)
    assert report.champion_status == "compared" and report.champion_note == ""
    assert decision.passed and all(r.value is not None for r in decision.rules)


@pytest.mark.parametrize("broken", ["labels", "weights"])
def test_champion_that_cannot_be_compared_fails_the_champion_rules(
    eval_cfg, bundle, tuned_dir, tiny_model_dir, champion_dir, tmp_path, broken
):
    if broken == "labels":
        other = Path(save_classifier(tiny_model_dir, ["x", "y", "z"], tmp_path / "other"))
        why = "has labels ['x', 'y', 'z'], not this run's"
    else:
        other = copy_of(champion_dir, tmp_path / "no-weights")
        (other / "model.safetensors").unlink()
        why = "does not load"
    report, decision = run(eval_cfg, bundle, tuned_dir, other)
    assert report.champion is None and report.vs_champion is None and report.has_champion
    assert report.champion_status.startswith("not comparable: ") and why in report.champion_status
    assert not decision.passed and [r.passed for r in decision.rules] == [False, False]
    assert all(r.note.startswith("champion not compared: ") and why in r.note for r in decision.rules)
    assert any("gate rules fail" in n for n in report.notes)
    # The old inference ("no vs_champion metric, so no champion") would have waved these rules through.
    assert gate(report.flat_metrics(), RULES, primary_metric="macro_f1").passed


def test_champion_is_scored_only_on_test_rows_it_did_not_train_on(eval_cfg, bundle, tuned_dir, champion_dir, tmp_path):
    seen_champion = copy_of(champion_dir, tmp_path / "seen")
    test_texts = bundle.test["text"].tolist()
    # The champion trained on this run's train split and on 15 test rows, written with other case and spacing.
    write_seen_texts(seen_champion, [*bundle.train["text"], *(f"  {t.upper()}\n" for t in test_texts[:15])])
    report, _ = run(eval_cfg, bundle, tuned_dir, seen_champion)

    keep = ~np.isin(text_hashes(test_texts), text_hashes([*bundle.train["text"], *test_texts[:15]]))
    assert keep[:15].sum() == 0 and report.vs_champion_excluded == int((~keep).sum()) >= 15
    assert report.vs_champion_rows == int(keep.sum()) == report.champion["n"] >= MIN_CHAMPION_ROWS
    flat = report.flat_metrics()
    assert flat["vs_champion_rows"] == report.vs_champion_rows and flat["vs_champion_excluded"] >= 15
    assert report.tuned["n"] == len(test_texts)  # the tuned model is still scored on every test row
    assert any("left out" in n for n in report.notes)
    genre = report.slices["genre"]["values"]  # per slice too, on the rows the champion did not train on
    assert sum(v["champion_rows"] for v in genre) == report.vs_champion_rows

    # Same numbers as comparing the two models on the unseen rows alone, with a champion that keeps no record.
    unseen = Bundle(bundle.train, bundle.eval, bundle.test[keep].reset_index(drop=True), bundle.labels)
    reference, _ = run(eval_cfg, unseen, tuned_dir, champion_dir)
    compared = ("champion.", "vs_champion.", "vs_champion_ci_low.", "vs_champion_ci_high.", "vs_champion_p_value.")
    ours, theirs = ({k: v for k, v in r.flat_metrics().items() if k.startswith(compared)} for r in (report, reference))
    assert len(ours) > 20 and ours == pytest.approx(theirs, abs=1e-6)
    assert report.champion["confusion_matrix"] == reference.champion["confusion_matrix"]
    assert any(f"no {SEEN_TEXTS_FILE}" in n for n in reference.notes)


def test_too_few_unseen_rows_fail_the_champion_rules(eval_cfg, bundle, tuned_dir, champion_dir, tmp_path):
    seen_champion = copy_of(champion_dir, tmp_path / "seen")
    write_seen_texts(seen_champion, bundle.test["text"].tolist()[:40])
    report, decision = run(eval_cfg, bundle, tuned_dir, seen_champion)
    assert report.champion is None and report.vs_champion_rows == 20 and report.vs_champion_excluded == 40
    assert "only 20 of 60 test rows are unseen" in report.champion_status
    assert not decision.passed and all("only 20 of 60" in r.note for r in decision.rules)


def test_unreadable_seen_file_is_not_comparable(eval_cfg, bundle, tuned_dir, champion_dir, tmp_path):
    seen_champion = copy_of(champion_dir, tmp_path / "seen")
    np.save(seen_champion / SEEN_TEXTS_FILE, np.array([{"not": "hashes"}], dtype=object), allow_pickle=True)
    report, decision = run(eval_cfg, bundle, tuned_dir, seen_champion)
    assert "cannot tell which test rows" in report.champion_status and not decision.passed

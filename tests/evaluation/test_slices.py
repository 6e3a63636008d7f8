from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tunesmith.config import ConfigError, GatesConfig, config_from_dict
from tunesmith.config.family_rules import slice_gate_applies
from tunesmith.evaluation import gate, is_valid_gate_metric
from tunesmith.evaluation.html import slices_html
from tunesmith.evaluation.slices import SliceSettings, slice_flat, slice_metrics, text_length_buckets

SETTINGS = SliceSettings(min_rows=30, samples=300, seed=0)


def test_text_length_tertiles():
    texts = [" ".join(["w"] * n) for n in range(1, 10)]
    buckets, ranges = text_length_buckets(texts)
    assert buckets.tolist() == ["short"] * 3 + ["medium"] * 3 + ["long"] * 3
    assert ranges == {"short": "1-3 tokens", "medium": "4-6 tokens", "long": "7-9 tokens"}


def test_slice_metrics_per_value_with_small_slices_and_missing_values():
    n = 40
    test = pd.DataFrame({
        "text": [" ".join(["w"] * (1 + i % 12)) for i in range(n)],
        "genre": ["drama"] * 20 + ["comedy"] * 17 + [None] * 3,
    })
    y = np.array([i % 2 for i in range(n)])
    tuned = y.copy()
    tuned[20:30] = 1 - tuned[20:30]  # 10 of the 17 comedy rows wrong
    baseline = np.zeros(n, dtype=int)
    out = slice_metrics(test, y, {"tuned": tuned, "baseline": baseline}, ["genre", "text_length", "channel"], 2,
                        settings=SliceSettings(min_rows=5, samples=200))
    genre = {v["value"]: v for v in out["genre"]["values"]}
    assert genre["drama"]["n"] == 20 and genre["drama"]["tuned"]["accuracy"] == 1.0
    assert genre["comedy"]["tuned"]["accuracy"] == pytest.approx(7 / 17)
    assert genre["drama"]["baseline"]["accuracy"] == 0.5
    assert genre["drama"]["baseline"]["macro_f1"] == pytest.approx(1 / 3)  # one class always predicted
    low, high = genre["comedy"]["ci"]["accuracy"]
    assert 0 < low < 7 / 17 < high < 1 and genre["drama"]["ci"]["accuracy"] == [1.0, 1.0]
    # the 3 rows without a genre are scored and shown, but too few to take part in the gap
    assert genre["(missing)"]["n"] == 3 and genre["(missing)"]["small"] and "tuned" in genre["(missing)"]
    gap = out["genre"]["gap"]["accuracy"]
    assert gap["gap"] == pytest.approx(1 - 7 / 17) and (gap["best"], gap["worst"], gap["slices"]) == ("drama", "comedy", 2)
    assert any("(missing) (3 rows)" in note and "left out of the gap" in note for note in out["genre"]["notes"])
    lengths = out["text_length"]
    assert [v["value"] for v in lengths["values"]] == ["short", "medium", "long"]
    assert sum(v["n"] for v in lengths["values"]) == n and set(lengths["ranges"]) == {"short", "medium", "long"}
    assert "not in the test split" in out["channel"]["error"]


def test_a_slice_column_named_text_length_is_used_as_is():
    test = pd.DataFrame({"text": ["a"] * 12, "text_length": ["x"] * 12})
    out = slice_metrics(test, np.zeros(12, dtype=int), {"tuned": np.zeros(12, dtype=int)}, ["text_length"], 2)
    assert [v["value"] for v in out["text_length"]["values"]] == ["x"]
    assert out["text_length"]["gap"] == {} and "fewer than two slices" in out["text_length"]["notes"][0]


def _frame(error_rates: dict[str, float], n: int = 300, seed: int = 0):
    """A 3-class test set with one `region` per block of n rows; each region's predictions wrong at its rate."""
    rng = np.random.default_rng(seed)
    region = np.repeat(list(error_rates), n)
    y = rng.integers(0, 3, len(region))
    wrong = rng.random(len(region)) < np.array([error_rates[r] for r in region])
    pred = np.where(wrong, (y + rng.integers(1, 3, len(region))) % 3, y)
    return pd.DataFrame({"text": ["a review"] * len(region), "region": region}), y, pred


GAP_RULES = GatesConfig.model_validate(["slices.max_gap.macro_f1 <= 0.05", "slices.region.max_gap.accuracy <= 0.05"])


def test_one_systematically_worse_slice_fails_the_max_gap_gate_and_a_balanced_set_passes():
    test, y, pred = _frame({"north": 0.1, "south": 0.1, "east": 0.3})
    tiny = np.arange(len(y))[-8:]  # 8 rows of a 4th region, all wrong: reported, too small to count in the gap
    test.loc[tiny, "region"], pred[tiny] = "islands", (y[tiny] + 1) % 3
    slices = slice_metrics(test, y, {"tuned": pred}, ["region"], 3, settings=SETTINGS)
    gap = slices["region"]["gap"]["macro_f1"]
    assert gap["worst"] == "east" and 0.12 < gap["gap"] < 0.28 and 0.05 < gap["ci_low"] < gap["gap"] < gap["ci_high"]
    flat = slice_flat(slices)
    assert flat["slices.max_gap.macro_f1"] == flat["slices.region.max_gap.macro_f1"] == pytest.approx(gap["gap"])
    decision = gate(flat, GAP_RULES, primary_metric="macro_f1", has_champion=False)
    assert not decision.passed and [r.passed for r in decision.rules] == [False, False]
    note = decision.rules[0].note
    assert f"measured {gap['gap']:.4g} [CI {gap['ci_low']:.4g}, {gap['ci_high']:.4g}]; needs <= 0.05" == note
    assert "islands" in {v["value"] for v in slices["region"]["values"]} and gap["slices"] == 3

    test, y, pred = _frame({"north": 0.1, "south": 0.1, "east": 0.1}, n=1500, seed=1)
    flat = slice_flat(slice_metrics(test, y, {"tuned": pred}, ["region"], 3, settings=SETTINGS))
    decision = gate(flat, GAP_RULES, primary_metric="macro_f1", has_champion=False)
    assert decision.passed and flat["slices.max_gap.macro_f1"] < 0.03 and "[CI " in decision.rules[0].note


def test_a_champion_better_on_one_slice_fails_worst_vs_champion():
    test, y, pred = _frame({"north": 0.1, "south": 0.2})
    champion = np.where(test["region"] == "south", y, pred)  # the champion is right on every southern row
    unseen = np.ones(len(y), dtype=bool)
    unseen[:100] = False  # it trained on 100 northern rows: they are not compared
    slices = slice_metrics(test, y, {"tuned": pred}, ["region"], 3, settings=SETTINGS, champion=(champion, unseen))
    rows = {v["value"]: v for v in slices["region"]["values"]}
    assert rows["north"]["champion_rows"] == 200 and rows["north"]["vs_champion"]["accuracy"]["delta"] == 0.0
    worst = slices["region"]["worst_vs_champion"]["macro_f1"]
    assert worst["slice"] == "south" and worst["ci_high"] < 0 and worst["delta"] == pytest.approx(
        rows["south"]["tuned"]["macro_f1"] - 1.0)
    rules = GatesConfig.model_validate(["slices.worst_vs_champion.macro_f1 >= -0.02"])
    failed = gate(slice_flat(slices), rules, primary_metric="macro_f1", has_champion=True).rules[0]
    assert not failed.passed and failed.value == pytest.approx(worst["delta"]) and "[CI " in failed.note
    # like vs_champion.*: passes while there is no champion, fails when one exists but was not compared
    assert gate({}, rules, primary_metric="macro_f1", has_champion=False).rules[0].note == "no champion yet"
    odd = gate({}, rules, primary_metric="macro_f1", has_champion=True, champion_note="other labels").rules[0]
    assert not odd.passed and "other labels" in odd.note
    html = slices_html({"<b>region</b>": slices["region"]})
    assert "&lt;b&gt;region&lt;/b&gt;" in html and "<b>region" not in html and "Worst slice vs the champion" in html


def test_slice_gate_names_are_checked_against_the_family():
    for name in ("slices.max_gap.macro_f1", "slices.topic.max_gap_ci_high.accuracy", "slices.worst_vs_champion.accuracy"):
        assert is_valid_gate_metric(name), name
    assert not is_valid_gate_metric("slices.max_gap.macro_f2") and not is_valid_gate_metric("slices.topic")

    def refusal(task: str, rule: str, slices=("text_length", "topic")) -> str:
        with pytest.raises(ConfigError) as exc:
            config_from_dict({"name": "m", "task": task, "data": {"path": "x.csv"}, "gates": [rule],
                              "evaluation": {"slices": list(slices)}})
        return str(exc.value)

    assert "reports accuracy, macro_f1 per slice, not log_loss" in refusal("classification", "slices.max_gap.log_loss <= 1")
    assert "regression reports no metric per slice" in refusal("regression", "slices.max_gap.mae <= 1")
    assert "'genre' is not in evaluation.slices" in refusal("classification", "slices.genre.max_gap.accuracy <= 0.1")
    assert "evaluation.slices is empty" in refusal("classification", "slices.max_gap.accuracy <= 0.1", slices=())
    assert "not a slice gate" in refusal("classification", "slices.gap.accuracy <= 0.1")
    cfg = config_from_dict({"name": "m", "data": {"path": "x.csv"}, "evaluation": {"slices": ["topic"]},
                            "gates": ["slices.topic.max_gap.macro_f1 <= 0.05", "slices.worst_vs_champion.accuracy >= -0.02"]})
    assert cfg.data.slice_columns == ["topic"] and cfg.evaluation.slice_min_rows == 10
    # a retrained challenger keeps text_length only: the rules on the other columns are not carried over
    assert not slice_gate_applies("slices.topic.max_gap.macro_f1", ["text_length"])
    assert slice_gate_applies("slices.max_gap.macro_f1", ["text_length"]) and slice_gate_applies("macro_f1", [])


def test_the_model_card_shows_the_gaps_when_measured():
    from tunesmith.evaluation.card import model_card

    test, y, pred = _frame({"north": 0.1, "east": 0.3}, n=100)
    slices = slice_metrics(test, y, {"tuned": pred, "baseline": np.zeros_like(y)}, ["region"], 3, settings=SETTINGS)
    cfg = config_from_dict({"name": "m", "data": {"path": "x.csv"}})
    report = SimpleNamespace(tuned={"macro_f1": 0.8}, baseline={"macro_f1": 0.7}, uplift={}, champion=None,
                             bootstrap={}, notes=[], slices=slices)
    decision = SimpleNamespace(passed=False, summary="0 of 1 gate rules passed")
    card = model_card(cfg, report=report, data={}, decision=decision, lineage={})
    gap = slices["region"]["gap"]["macro_f1"]
    assert (f"- Gap in macro_f1 between the best and the worst slice: {gap['gap']:.4f} [{gap['ci_low']:.4f}, "
            f"{gap['ci_high']:.4f}] (best north, worst east, 2 slices)") in card
    assert "fairness gates across slices" not in card
    assert "fairness gates across slices" in model_card(cfg, report=SimpleNamespace(**{**vars(report), "slices": {}}),
                                                        data={}, decision=decision, lineage={})

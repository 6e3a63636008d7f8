"""Per-answer scores for generated text: exact match, ROUGE-L F1, JSON validity against a schema.

ROUGE-L comes from `rouge-score` (Google's reimplementation of ROUGE-1.5.5), run locally: no hub metric download.
Each function returns one score per answer, so the bootstrap can resample them and the report can show them.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any


def normalize_answer(text: str) -> str:
    """NFC, whitespace collapsed, casefolded: what exact match compares."""
    return " ".join(unicodedata.normalize("NFC", text).split()).casefold()


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    return [float(normalize_answer(p) == normalize_answer(r)) for p, r in zip(predictions, references, strict=True)]


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F1 (longest common subsequence of stemmed tokens) of each prediction against its reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [float(scorer.score(r, p)["rougeL"].fmeasure) for p, r in zip(predictions, references, strict=True)]


def json_valid(predictions: Sequence[str], schema: dict[str, Any]) -> tuple[list[float], list[str]]:
    """1.0 where the answer parses as JSON and validates against `schema`, else 0.0 with the reason."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    scores, reasons = [], []
    for text in predictions:
        try:
            value = json.loads(_strip_fence(text))
        except ValueError as err:
            scores.append(0.0)
            reasons.append(f"not JSON: {err}")
            continue
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        scores.append(0.0 if error else 1.0)
        reasons.append(f"schema: {error.message}" if error else "")
    return scores, reasons


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in a ```json fence; the JSON inside is what counts."""
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        t = t.rsplit("```", 1)[0]
    return t.strip()

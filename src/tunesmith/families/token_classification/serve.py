"""Serving an extractor: /v1/extract answers the entities of each text as character spans."""

from __future__ import annotations

from pathlib import Path

from tunesmith.serving.models import Served, architecture, load_transformer


def recognizes(model_dir: Path, config: dict) -> bool:
    return architecture(config).endswith("ForTokenClassification")


def load_served(model_dir: Path, served: Served) -> None:
    from transformers import AutoModelForTokenClassification

    load_transformer(served, AutoModelForTokenClassification)
    served.output = "probabilities"
    served.onnx_refusal = "/v1/extract runs tunesmith's word split and tagger on the torch model"


def describe_model(model_dir: Path) -> dict:
    """The BIO tags in id order."""
    import json

    id2label = json.loads((Path(model_dir) / "config.json").read_text()).get("id2label") or {}
    return {"labels": [id2label[k] for k in sorted(id2label, key=int)]}


def confidence(entities: list[dict]) -> float | None:
    """An extraction is as sure as its least sure entity; one with no entity has no confidence (no floor applies)."""
    scores = [float(e["score"]) for e in entities if isinstance(e.get("score"), int | float)]
    return min(scores) if scores else None


def abstain(entities: list[dict], floor: float) -> tuple[list[dict], list[dict]]:
    """Below serving.filters.confidence_floor: the caller gets only the entities scored at or above it; the log keeps
    every entity, the withheld ones flagged `"abstained": true`, so review shows the model's whole guess."""
    kept = [e for e in entities if float(e.get("score", 0.0)) >= floor]
    logged = [{**e, "abstained": True} if float(e.get("score", 0.0)) < floor else e for e in entities]
    return kept, logged


def predict(served: Served, texts: list[str]) -> list[list[dict]]:
    """Entities per text as character spans {start, end, label, score, text}, the whole batch in one pass (words
    split and tags read as in training: families.token_classification.model.extract)."""
    from tunesmith.families.token_classification.model import extract as extract_entities

    with served.autocast_ctx():
        return extract_entities(served.model, served.tokenizer, texts, max_length=served.max_length,
                                batch_size=max(len(texts), 1))



"""Builders for the evaluation tests: a stand-in DataBundle, a config, and classifier model dirs."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from tests.toy import make_reviews

from tunesmith.config import config_from_dict
from tunesmith.families.classification.model import build_model, load_tokenizer

LABELS = ["<script>alert(1)</script>", "neg"]  # a hostile label name: the report must escape it


@dataclass
class Bundle:
    """What evaluation reads from tunesmith.data.DataBundle."""

    train: pd.DataFrame
    eval: pd.DataFrame
    test: pd.DataFrame
    labels: list[str]


def make_bundle(n_train: int = 80, n_eval: int = 40, n_test: int = 60) -> Bundle:
    frames = []
    for i, n in enumerate((n_train, n_eval, n_test)):
        df = make_reviews(n, seed=10 + i, labels=tuple(LABELS))
        df["channel"] = ["phone" if j < 3 else "web" for j in range(n)]  # "phone" is too rare to score
        frames.append(df)
    return Bundle(*frames, labels=sorted(LABELS))


def make_config(base: str, **evaluation):
    return config_from_dict({
        "name": "reviews",
        "data": {"path": "unused.jsonl", "slice_columns": ["genre", "channel"]},
        "model": {"base": base, "max_length": 32},
        "training": {"eval_batch_size": 32, "metric": "macro_f1"},
        "evaluation": {"bootstrap": {"samples": 200}, "slices": ["text_length", "genre", "channel"], **evaluation},
        "gates": ["macro_f1 >= 0.0", "uplift.macro_f1 >= -1", "vs_champion.accuracy >= 0"],
    })


def save_classifier(base: str, labels: list[str], path, *, seed: int = 0) -> str:
    torch.manual_seed(seed)
    model = build_model(base, labels)
    model.save_pretrained(path)
    load_tokenizer(base).save_pretrained(path)
    return str(path)


def save_relabelled_copy(model_dir: str, path) -> str:
    """The same classifier with its label order reversed (head rows permuted to match): identical predictions."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight.flip(0))
        model.classifier.bias.copy_(model.classifier.bias.flip(0))
    names = [model.config.id2label[i] for i in range(model.config.num_labels)][::-1]
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {n: i for i, n in enumerate(names)}
    model.save_pretrained(path)
    load_tokenizer(model_dir).save_pretrained(path)
    return str(path)

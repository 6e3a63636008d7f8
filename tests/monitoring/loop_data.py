"""Two traffic mixes for the closing-the-loop tests: movie reviews (balanced) and product reviews (mostly negative,
with their own sentiment words), and a tiny BERT whose tokenizer knows both vocabularies."""

from __future__ import annotations

import random

import pandas as pd
import torch
from tests.toy import NEGATIVE, NEUTRAL, POSITIVE, wordpiece

PRODUCT_POS = ["sturdy", "reliable", "speedy", "quiet", "solid", "handy", "sleek", "durable"]
PRODUCT_NEG = ["broken", "sluggish", "noisy", "cracked", "flimsy", "leaky", "faulty", "overheats"]
PRODUCT_NEUTRAL = ["phone", "charger", "cable", "box", "order", "delivery", "battery", "screen", "my", "it", "is",
                   "arrived", "this", "after", "week", "one"]


def movie_reviews(n: int, seed: int, pos_share: float = 0.5) -> pd.DataFrame:
    return _reviews(n, seed, pos_share, POSITIVE, NEGATIVE, NEUTRAL)


def product_reviews(n: int, seed: int, pos_share: float = 0.25) -> pd.DataFrame:
    return _reviews(n, seed, pos_share, PRODUCT_POS, PRODUCT_NEG, PRODUCT_NEUTRAL)


def _reviews(n, seed, pos_share, pos_words, neg_words, neutral) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = "pos" if rng.random() < pos_share else "neg"
        words = pos_words if label == "pos" else neg_words
        body = [rng.choice(neutral) for _ in range(rng.randint(4, 10))]
        for _ in range(rng.randint(2, 3)):
            body.insert(rng.randrange(len(body) + 1), rng.choice(words))
        rows.append({"text": " ".join(body), "label": label})
    return pd.DataFrame(rows)


def build_base_model(path) -> str:
    """A 2-layer, 32-dim BERT encoder with a WordPiece tokenizer over both mixes' words (deterministic)."""
    from tokenizers import processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = wordpiece(POSITIVE + NEGATIVE + NEUTRAL + PRODUCT_POS + PRODUCT_NEG + PRODUCT_NEUTRAL)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)


def loop_config(tmp_path, base_dir: str, **extra) -> dict:
    """A classification config on the movie mix, with fast training and the loop's settings for a small stream."""
    movie_reviews(240, seed=1).to_csv(tmp_path / "movies.csv", index=False)
    cfg = {
        "name": "loop-toy",
        "output_dir": str(tmp_path / ".tunesmith/runs"),
        "data": {"path": str(tmp_path / "movies.csv"), "labels": ["neg", "pos"], "split": {"eval": 0.15, "test": 0.2},
                 "checks": {"label_issues": {"enabled": False}, "pii": {"presidio": "off"}}},
        "model": {"base": base_dir, "max_length": 32},
        "method": {"kind": "full"},
        "training": {"epochs": 6, "batch_size": 16, "learning_rate": 5e-3, "early_stopping_patience": None},
        "evaluation": {"bootstrap": {"samples": 200}},
        "gates": ["accuracy >= 0.8", "vs_champion.accuracy >= -0.1"],
        "registry": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
        "serving": {"max_wait_ms": 1, "poll_interval_s": 0.2,
                    "predictions": {"url": f"sqlite:///{tmp_path}/predictions.db", "redact_pii": False}},
        "monitoring": {"window": "120", "report_dir": str(tmp_path / ".tunesmith/monitor"),
                       "drift": {"permutations": 100, "reference_rows": 80, "max_rows": 80},
                       "slo": {"accuracy": 0.9, "macro_f1": 0.8, "min_labels": 20},
                       "triggers": {"new_labels": 1000, "min_new_labels": 20}},
        "retrain": {"rehearsal": 0.5, "recent_holdout": 0.3, "min_recent_rows": 20,
                    "datasets_dir": str(tmp_path / ".tunesmith/datasets")},
    }
    cfg.update(extra)
    return cfg

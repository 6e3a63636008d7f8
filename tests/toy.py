"""Toy data and a tiny model for tests: short reviews whose label is carried by a few words, and a 2-layer BERT."""

from __future__ import annotations

import random

import pandas as pd
import torch

POSITIVE = ["great", "wonderful", "superb", "delightful", "moving", "brilliant", "charming", "fresh"]
NEGATIVE = ["awful", "dull", "boring", "clumsy", "tedious", "messy", "bland", "rotten"]
NEUTRAL = ["film", "movie", "plot", "actor", "story", "scene", "the", "a", "was", "and", "with", "script"]


def make_reviews(n: int, seed: int = 0, labels=("pos", "neg")) -> pd.DataFrame:
    """Short texts whose label is carried by a few sentiment words; learnable by a tiny model in a few steps."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = POSITIVE if label == labels[0] else NEGATIVE
        body = [rng.choice(NEUTRAL) for _ in range(rng.randint(3, 12))]
        for _ in range(rng.randint(1, 3)):
            body.insert(rng.randrange(len(body) + 1), rng.choice(words))
        rows.append({"text": " ".join(body), "label": label, "genre": rng.choice(["drama", "comedy"])})
    return pd.DataFrame(rows)


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PIECES = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:@/_"


def wordpiece(words):
    """A BERT-style WordPiece tokenizer whose vocabulary is the specials, `words` whole, and single characters (so
    any other word splits into characters). Built from the list, not trained: the tokenizers trainer breaks ties in
    its own hash order, which differs between processes, so a trained toy vocabulary (and every model built on it)
    changed from run to run."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = list(SPECIALS)
    for token in sorted({w.lower() for w in words}) + list(PIECES) + ["##" + c for c in PIECES]:
        if token not in vocab:
            vocab.append(token)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def build_tiny_model_dir(path) -> str:
    """A 2-layer, 32-dim BERT with a WordPiece tokenizer over the toy vocabulary, saved as a model dir."""
    from tokenizers import processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = wordpiece(POSITIVE + NEGATIVE + NEUTRAL)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=128,
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)

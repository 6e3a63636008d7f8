"""The product vocabulary of the closing-the-loop tests (the movie one is tests/toy.py's), and a tiny BERT whose
tokenizer knows both (tests/families/loop_streams.py builds the traffic)."""

from __future__ import annotations

import torch
from tests.toy import NEGATIVE, NEUTRAL, POSITIVE, wordpiece

PRODUCT_POS = ["sturdy", "reliable", "speedy", "quiet", "solid", "handy", "sleek", "durable"]
PRODUCT_NEG = ["broken", "sluggish", "noisy", "cracked", "flimsy", "leaky", "faulty", "overheats"]
PRODUCT_NEUTRAL = ["phone", "charger", "cable", "box", "order", "delivery", "battery", "screen", "my", "it", "is",
                   "arrived", "this", "after", "week", "one"]


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

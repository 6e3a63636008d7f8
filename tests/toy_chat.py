"""Toy chat data and a tiny Llama-style causal LM (2 layers, 32 dims) with a BPE tokenizer trained here."""

from __future__ import annotations

import json
import random

import torch

# ChatML-like: every turn ends with the EOS token, the generation prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
WORDS = ["hello", "how", "are", "you", "fine", "thanks", "what", "is", "the", "time", "noon", "weather", "sunny",
         "rain", "order", "status", "shipped", "refund", "yes", "no", "please", "help", "account", "password"]


ANSWERS = {  # the question's topic word decides the answer: learnable by a tiny model in a few dozen steps
    "refund": "yes the refund is shipped",
    "weather": "the weather is sunny",
    "password": "please reset the password",
    "order": "the order is shipped",
}


def make_chats(n: int, seed: int = 0) -> list[dict]:
    """Two-turn support chats in OpenAI `messages` form; the answer is fixed by the question's topic word."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = list(ANSWERS)[i % len(ANSWERS)]
        q = [rng.choice(WORDS) for _ in range(rng.randint(1, 5))]
        q.insert(rng.randrange(len(q) + 1), topic)
        rows.append({"messages": [{"role": "user", "content": " ".join(q)},
                                  {"role": "assistant", "content": ANSWERS[topic]}]})
    return rows


def write_jsonl(path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def build_tiny_chat_model_dir(path) -> str:
    """A 2-layer, 32-dim LlamaForCausalLM and a byte-level BPE tokenizer with CHAT_TEMPLATE, saved as a model dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [" ".join(WORDS)] * 20 + list(ANSWERS.values()) * 20 + [json.dumps(r) for r in make_chats(200, seed=9)]
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   model_max_length=256)
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)

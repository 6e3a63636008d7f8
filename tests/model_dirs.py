"""Model dirs as training leaves them (safetensors, config, tokenizer, tunesmith.json), built in seconds from the tiny
bases, for tests of what happens after training: registering, MLflow's tools, serving."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.model_card import CARD_FILE


def write_card(path: Path, family: str, name: str, **extra) -> None:
    card = {"card_version": 1, "family": family, "name": name, "base_model": "tiny", "method": "full", **extra}
    (Path(path) / CARD_FILE).write_text(json.dumps(card))


def classifier(path: Path, tiny_model_dir: str, name: str = "sentiment") -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    write_card(path, "classification", name, labels=["neg", "pos"])
    return Path(path)


def embedder(path: Path, tiny_model_dir: str, name: str = "faq") -> Path:
    """A sentence-transformers bi-encoder dir: Transformer + mean Pooling + Normalize."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    word = Transformer(tiny_model_dir, max_seq_length=32)
    pooling = Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[word, pooling, Normalize()], device="cpu").save(str(path))
    write_card(path, "embedding", name)
    return Path(path)


def chat_model(path: Path, tiny_chat_model_dir: str, name: str = "support") -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_chat_model_dir).save_pretrained(path)
    write_card(path, "causal-lm", name, chat_template=True)
    return Path(path)

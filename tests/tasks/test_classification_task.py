"""The classification task: label maps in the model config, and batched prediction that keeps input order."""

import numpy as np
import torch

from tunesmith.config import TaskKind
from tunesmith.families import classification, get
from tunesmith.families.classification.model import build_model, embed, encode, load_tokenizer, predict_logits


def test_registered_under_its_kind():
    assert get(TaskKind.CLASSIFICATION) is classification.TASK
    assert get("classification") is classification.TASK


def test_build_model_keeps_label_names(tiny_model_dir):
    model = build_model(tiny_model_dir, ["neg", "pos", "meh"])
    assert model.config.id2label == {0: "neg", 1: "pos", 2: "meh"}
    assert model.config.label2id == {"neg": 0, "pos": 1, "meh": 2}
    assert model.config.num_labels == 3


def test_encode_does_not_pad(tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    enc = encode(tok, ["great film", "a dull and boring and tedious story with the actor"], max_length=8)
    lengths = [len(ids) for ids in enc["input_ids"]]
    assert lengths[0] < lengths[1] == 8  # dynamic: no padding, truncation at max_length


def test_batched_prediction_matches_one_by_one_in_input_order(tiny_model_dir, reviews):
    torch.manual_seed(0)
    model, tok = build_model(tiny_model_dir, ["neg", "pos"]), load_tokenizer(tiny_model_dir)
    texts = reviews["text"].tolist()[:23]
    batched = predict_logits(model, tok, texts, max_length=32, batch_size=4)  # sorted by length inside
    single = np.concatenate([predict_logits(model, tok, [t], max_length=32, batch_size=1) for t in texts])
    assert batched.shape == (23, 2)
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_embed_mean_pools_in_input_order(tiny_model_dir, reviews):
    texts = reviews["text"].tolist()[:9]
    vecs = embed(tiny_model_dir, texts, max_length=32, batch_size=4)
    alone = np.concatenate([embed(tiny_model_dir, [t], max_length=32) for t in texts])
    assert vecs.shape == (9, 32)
    np.testing.assert_allclose(vecs, alone, atol=1e-5)

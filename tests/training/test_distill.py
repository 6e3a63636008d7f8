"""Distillation: the KD loss math, a classification student learning from a teacher (with teacher-labelled rows),
a smaller student from fewer layers, and token-level KD for a causal LM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.toy import make_reviews
from tests.training.conftest import make_bundle, make_config
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tunesmith.config import ConfigError, DistillConfig, MethodKind, config_from_dict
from tunesmith.families.classification.model import predict_logits
from tunesmith.training import TrainingError, train
from tunesmith.training.distill import classification_kd_loss, read_distill_record, soft_kl, token_kd_sum


def _distill_cfg(model_dir, teacher, **distill):
    cfg = make_config(model_dir, "full", epochs=6)
    method = cfg.method.model_copy(update={"kind": MethodKind.DISTILL,
                                           "distill": DistillConfig(teacher=str(teacher), **distill)})
    return cfg.model_copy(update={"method": method})


def test_kd_loss_matches_a_hand_computation():
    s = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    t = torch.tensor([[1.0, 1.0, -2.0], [3.0, 0.0, 0.0]])
    y = torch.tensor([0, 1])
    T = 2.0
    p_t, log_p_s = F.softmax(t / T, -1), F.log_softmax(s / T, -1)
    kl = (p_t * (p_t.log() - log_p_s)).sum(-1) * T * T
    assert torch.allclose(soft_kl(s, t, T), kl, atol=1e-6)
    d = DistillConfig(teacher="x", temperature=T, kd_weight=0.3, hard_weight=0.7)
    expected = 0.3 * kl.mean() + 0.7 * F.cross_entropy(s, y)
    assert torch.allclose(classification_kd_loss(s, t, y, None, d), expected, atol=1e-6)
    # a soft-only (synthetic) row adds nothing to the hard term
    only_first = 0.3 * kl.mean() + 0.7 * F.cross_entropy(s[:1], y[:1])
    assert torch.allclose(classification_kd_loss(s, t, y, torch.tensor([1.0, 0.0]), d), only_first, atol=1e-6)
    hard_only = DistillConfig(teacher="x", kd_weight=0.0, hard_weight=1.0)
    assert torch.allclose(classification_kd_loss(s, t, y, None, hard_only), F.cross_entropy(s, y), atol=1e-6)
    assert torch.equal(soft_kl(t, t, T), torch.zeros(2))  # the same distribution: nothing to learn


def test_token_kd_counts_only_positions_that_predict_loss_tokens():
    torch.manual_seed(0)
    s, t = torch.randn(1, 5, 7), torch.randn(1, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, -100]])  # positions 1 and 2 predict the loss tokens 3 and 4
    expected = soft_kl(s[0, 1:3], t[0, 1:3], 1.0).sum()
    assert torch.allclose(token_kd_sum(s, t, labels, 1.0), expected)


@pytest.fixture(scope="module")
def teacher_dir(tiny_model_dir, tmp_path_factory):
    return train(make_config(tiny_model_dir, "full", epochs=3), make_bundle(), tmp_path_factory.mktemp("t")).model_dir


def test_student_with_fewer_layers_learns_from_teacher_and_its_synthetic_rows(tiny_model_dir, teacher_dir, tmp_path):
    bundle = make_bundle()
    extra = make_reviews(60, seed=99)["text"].tolist()
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("\n".join([*extra, "", bundle.test["text"].iloc[0], extra[0]]) + "\n", encoding="utf-8")
    cfg = _distill_cfg(tiny_model_dir, teacher_dir, student_layers=1, unlabeled=str(unlabeled))
    result = train(cfg, bundle, tmp_path / "run")

    student = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    assert student.config.num_hidden_layers == 1 and len(student.bert.encoder.layer) == 1
    tok = AutoTokenizer.from_pretrained(result.model_dir)
    preds = predict_logits(student, tok, bundle.test["text"].tolist(), max_length=32).argmax(1)
    accuracy = np.mean([student.config.id2label[int(p)] == y for p, y in zip(preds, bundle.test["label"], strict=True)])
    assert accuracy >= 0.8  # chance is 0.5
    record = read_distill_record(tmp_path / "run")
    n_new = len(set(extra) - {*bundle.train["text"], *bundle.eval["text"], *bundle.test["text"]})
    assert record["synthetic_rows"] == n_new and record["label_source"] == f"teacher:{teacher_dir}"
    assert record["synthetic_skipped"]["empty"] == 1 and record["synthetic_skipped"]["in_a_split"] >= 1
    assert record["synthetic_skipped"]["repeated"] >= 1
    assert result.method == "distill"
    json.dumps(result.to_dict())


def test_kd_pulls_the_student_toward_the_teacher(tiny_model_dir, tmp_path):
    """With the KD term only, the student's distribution moves toward a teacher that disagrees with the labels."""
    bundle = make_bundle()
    flip = {"pos": "neg", "neg": "pos"}
    anti = make_bundle()  # a teacher trained (and its checkpoint chosen) on flipped labels
    anti.train = anti.train.assign(label=anti.train["label"].map(flip))
    anti.eval = anti.eval.assign(label=anti.eval["label"].map(flip))
    anti_dir = train(make_config(tiny_model_dir, "full", epochs=3), anti, tmp_path / "anti").model_dir
    cfg = _distill_cfg(tiny_model_dir, anti_dir, kd_weight=1.0, hard_weight=0.0)
    bundle.eval = bundle.eval.iloc[:0]  # no best-checkpoint choice on human labels: the last weights are the result
    student = train(cfg, bundle, tmp_path / "kd").model_dir
    model = AutoModelForSequenceClassification.from_pretrained(student)
    tok = AutoTokenizer.from_pretrained(student)
    preds = predict_logits(model, tok, bundle.test["text"].tolist(), max_length=32).argmax(1)
    agree_with_labels = np.mean([model.config.id2label[int(p)] == y
                                 for p, y in zip(preds, bundle.test["label"], strict=True)])
    assert agree_with_labels <= 0.3  # it learned the teacher's (flipped) mapping, not the human labels


def test_config_errors_name_the_key_path(tiny_model_dir):
    base = {"name": "d", "data": {"path": "x.csv"}, "model": {"base": tiny_model_dir}}
    with pytest.raises(ConfigError, match="method.distill.teacher"):
        config_from_dict({**base, "method": {"kind": "distill"}})
    with pytest.raises(ConfigError, match="kd_weight and hard_weight"):
        config_from_dict({**base, "method": {"kind": "distill", "distill": {"teacher": "t", "kd_weight": 0,
                                                                            "hard_weight": 0}}})
    with pytest.raises(ConfigError, match="distill supports"):
        config_from_dict({**base, "task": "multi-label", "method": {"kind": "distill", "distill": {"teacher": "t"}}})


def test_a_missing_teacher_is_a_clear_error(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    cfg = _distill_cfg(tiny_model_dir, "no-such-model:3")
    with pytest.raises(TrainingError, match="neither a model dir nor a registered"):
        train(cfg, make_bundle(), tmp_path / "run")


def _mean_token_kl(student, teacher, tokenizer, bundle) -> float:
    from tunesmith.config import TrainOn
    from tunesmith.families.causal_lm import model as causal_lm

    ds = causal_lm.to_dataset(bundle.train, tokenizer, 64, TrainOn.ASSISTANT)
    batch = causal_lm.collator(tokenizer, packing=True)([ds[i] for i in range(len(ds))])
    full = batch.pop("labels")
    with torch.no_grad():
        s = student.eval()(**batch).logits
        t = teacher.eval()(**batch).logits
    n = int((full[..., 1:] != -100).sum())
    return float(token_kd_sum(s, t, full, 1.0)) / n


def test_token_level_kd_moves_a_smaller_causal_lm_toward_its_teacher(tiny_chat_model_dir, tmp_path):
    from tests.tasks.test_causal_lm import chat_bundle, chat_config
    from transformers import AutoModelForCausalLM

    from tunesmith.families.causal_lm import model as causal_lm
    from tunesmith.training.distill import shrink_layers

    bundle = chat_bundle()
    teacher_dir = train(chat_config(tiny_chat_model_dir, "full", epochs=2), bundle, tmp_path / "teacher").model_dir
    cfg = config_from_dict({**chat_config(tiny_chat_model_dir, epochs=2).model_dump(mode="json", exclude_unset=True),
                            "method": {"kind": "distill", "distill": {"teacher": str(teacher_dir), "kd_weight": 1.0,
                                                                      "hard_weight": 0.0, "student_layers": 1,
                                                                      "student_method": "full"}}})
    tokenizer = causal_lm.load_tokenizer(tiny_chat_model_dir)
    teacher = AutoModelForCausalLM.from_pretrained(teacher_dir)
    before = _mean_token_kl(shrink_layers(AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir), 1), teacher,
                            tokenizer, bundle)
    result = train(cfg, bundle, tmp_path / "student")
    student = AutoModelForCausalLM.from_pretrained(result.model_dir)
    assert student.config.num_hidden_layers == 1
    after = _mean_token_kl(student, teacher, tokenizer, bundle)
    assert after < 0.7 * before  # the student's next-token distributions moved toward the teacher's
    assert read_distill_record(tmp_path / "student")["task"] == "causal-lm"

"""The reranking task's LoRA on a tiny BERT cross-encoder: peft applied directly on the encoder (no transformers PEFT
integration), the classifier head trained in full beside the adapter, merged into a plain CrossEncoder dir."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file
from tests.toy_rerank import make_candidates

from tunesmith.config import config_from_dict
from tunesmith.data import prepare_data
from tunesmith.families.reranking import model as task
from tunesmith.training import train


def test_lora_trains_adapter_and_head_then_merges_into_a_plain_cross_encoder(tmp_path, tiny_model_dir, caplog):
    from peft import PeftModel
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification

    path = tmp_path / "cands.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in make_candidates(24, seed=2).to_dict("records")))
    cfg = config_from_dict({"name": "r", "task": "reranking", "seed": 0,
                            "data": {"path": str(path), "split": {"eval": 0.15, "test": 0.25},
                                     "checks": {"pii": {"presidio": "off"}}},
                            "model": {"base": tiny_model_dir, "max_length": 32},
                            "method": {"kind": "lora", "lora": {"r": 4, "alpha": 8}},
                            "training": {"epochs": 1, "batch_size": 16, "learning_rate": 3e-3,
                                         "early_stopping_patience": None}})
    model = task.apply_method(task.load_model(tiny_model_dir, cfg), cfg.method)
    trainable = [n for n, p in task.backbone(model).named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("classifier.modules_to_save.") for n in trainable)

    result = train(cfg, prepare_data(cfg, tmp_path / "run"), tmp_path / "run")
    assert result.best_checkpoint and "Could not load the best model" not in caplog.text  # the best step is kept
    assert result.method == "lora" and result.trainable_params < result.total_params / 4
    adapter = load_file(f"{tmp_path}/run/adapter/adapter_model.safetensors")
    assert any("lora_A" in k for k in adapter) and "base_model.model.classifier.weight" in adapter
    weights = load_file(f"{result.model_dir}/model.safetensors")
    assert not [k for k in weights if "lora" in k or "modules_to_save" in k or "original_module" in k]
    assert torch.equal(weights["classifier.weight"], adapter["base_model.model.classifier.weight"])  # the trained head, not the new one
    scores = CrossEncoder(str(result.model_dir), device="cpu").predict([("great film 0", "a great film")])
    assert scores.shape == (1,)

    # the adapter alone loads with peft on the base and gives the merged model's logits
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    peft_model = PeftModel.from_pretrained(base, str(tmp_path / "run/adapter")).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(str(result.model_dir)).eval()
    ids = {"input_ids": torch.tensor([[2, 5, 9, 7, 3]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    with torch.no_grad():
        assert torch.allclose(peft_model(**ids).logits, merged(**ids).logits, atol=1e-4)


def test_a_distilled_cross_encoder_follows_its_teachers_relevance_and_is_compared_with_it(tmp_path, tiny_model_dir):
    """KD only, from a teacher trained with the relevance flipped: the 1-layer student learns the teacher's score
    margins between a query's documents (MarginMSE) and scores pairs the teacher's way, not the human labels' way;
    the report compares them on MRR@10 with a CI."""
    import numpy as np
    from scipy.stats import spearmanr

    from tunesmith.families.reranking.evaluate import cross_encoder_scores
    from tunesmith.training.distill import read_distill_record
    from tunesmith.training.distill_report import compare_distilled

    path = tmp_path / "cands.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in make_candidates(40, seed=2).to_dict("records")))

    def config(**over):
        raw = {"name": "r", "task": "reranking", "seed": 0,
               "data": {"path": str(path), "split": {"eval": 0.15, "test": 0.25}, "checks": {"pii": {"presidio": "off"}}},
               "model": {"base": tiny_model_dir, "max_length": 32},
               "training": {"epochs": 12, "batch_size": 16, "learning_rate": 5e-3, "early_stopping_patience": None}}
        return config_from_dict({**raw, **over})

    cfg = config()
    anti = prepare_data(cfg)
    for split in ("train", "eval"):
        frame = getattr(anti, split)
        setattr(anti, split, frame.assign(relevance=2 - frame["relevance"]))
    teacher = train(cfg, anti, tmp_path / "teacher").model_dir
    student_cfg = config(method={"kind": "distill", "distill": {
        "teacher": str(teacher), "kd_weight": 1.0, "hard_weight": 0.0, "temperature": 1.0, "student_layers": 1,
        "compare_without_kd": False}})
    bundle = prepare_data(student_cfg)
    bundle.eval = bundle.eval.iloc[:0]  # no checkpoint choice on the human relevance: the last weights are the result
    result = train(student_cfg, bundle, tmp_path / "student")
    assert read_distill_record(tmp_path / "student")["task"] == "reranking"
    test = bundle.test.reset_index(drop=True)
    student = cross_encoder_scores(result.model_dir, student_cfg, test, "student")
    taught = cross_encoder_scores(teacher, student_cfg, test, "teacher")
    gold = test["relevance"].astype(float).to_numpy()
    with_teacher, with_gold = spearmanr(student, taught).statistic, spearmanr(student, gold).statistic
    assert with_teacher > max(0.4, with_gold + 0.2), (with_teacher, with_gold)  # it ranks the teacher's way
    doc = compare_distilled(student_cfg, bundle, tmp_path / "student", result.model_dir)
    assert doc["metric"] == "mrr@10" and doc["models"]["student"]["params"] < doc["models"]["teacher"]["params"]
    assert doc["gap"]["ci_low"] <= doc["gap"]["delta"] <= doc["gap"]["ci_high"] and np.isfinite(doc["speedup_b32"])

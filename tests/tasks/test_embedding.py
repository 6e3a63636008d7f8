"""The embedding task on a tiny BERT wrapped as a sentence-transformers model: train, save, load, evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tests.toy_pairs import make_pairs

from tunesmith.config import config_from_dict
from tunesmith.data import prepare_data
from tunesmith.evaluation import evaluate
from tunesmith.families.embedding import model as task
from tunesmith.training import MethodError, TrainingError, train


@pytest.fixture(scope="module")
def tiny_st_dir(tiny_model_dir, tmp_path_factory) -> str:
    """The tiny BERT as a sentence-transformers dir: transformer + mean pooling + normalize."""
    cfg = config_from_dict({"name": "e", "task": "embedding", "data": {"path": "x.jsonl"},
                            "model": {"base": tiny_model_dir, "max_length": 32}})
    path = tmp_path_factory.mktemp("tiny-st")
    task.load_model(tiny_model_dir, cfg).save_pretrained(str(path))
    return str(path)


def _cfg(tmp_path, base, rows=80, **over):
    path = tmp_path / "pairs.jsonl"
    make_pairs(rows, seed=3, negatives=True).to_json(path, orient="records", lines=True)
    raw = {"name": "e", "task": "embedding", "seed": 7, "data": {"path": str(path), "split": {"eval": 0.15, "test": 0.25}},
           "model": {"base": base, "max_length": 32},
           "training": {"epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "early_stopping_patience": None},
           "evaluation": {"bootstrap": {"samples": 200}}}
    for key, value in over.items():
        raw[key] = {**raw.get(key, {}), **value}
    return config_from_dict(raw)


def test_full_fine_tune_saves_a_plain_sentence_transformers_dir_with_uplift(tmp_path, tiny_st_dir):
    from sentence_transformers import SentenceTransformer

    cfg = _cfg(tmp_path, tiny_st_dir)
    bundle = prepare_data(cfg)
    result = train(cfg, bundle, tmp_path / "run")
    files = sorted(p.name for p in result.model_dir.iterdir())
    assert {"modules.json", "model.safetensors", "config_sentence_transformers.json", "1_Pooling"} <= set(files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert not (tmp_path / "run/checkpoints").exists()  # finished: checkpoints removed

    loaded = SentenceTransformer(str(result.model_dir), device="cpu")  # the ecosystem's own loader, unchanged
    emb = loaded.encode(["great and the film"], normalize_embeddings=True)
    assert emb.shape == (1, 32) and np.allclose(np.linalg.norm(emb), 1, atol=1e-5)
    before = load_file(f"{tiny_st_dir}/model.safetensors")
    after = load_file(f"{result.model_dir}/model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)

    report = evaluate(cfg, bundle, result.model_dir)
    flat = report.flat_metrics()
    assert {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "uplift.mrr@10", "uplift_ci_low.ndcg@10"} <= set(flat)
    assert report.queries == bundle.test["query"].nunique() and report.corpus > report.queries
    assert flat["uplift.mrr@10"] > 0  # the topic word is learnable; the random tiny base does not know it

    with pytest.raises(TrainingError, match="the run finished"):
        train(cfg, bundle, tmp_path / "run", resume=True)


def test_lora_is_merged_into_the_backbone_and_the_adapter_kept(tmp_path, tiny_st_dir, caplog):
    from peft import PeftModel
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    cfg = _cfg(tmp_path, tiny_st_dir, rows=40, method={"kind": "lora", "lora": {"r": 4, "alpha": 8}},
               training={"epochs": 1})
    result = train(cfg, prepare_data(cfg), tmp_path / "run")
    assert result.trainable_params < result.total_params / 4
    assert result.best_checkpoint and "Could not load the best model" not in caplog.text  # the best step is kept
    assert (tmp_path / "run/adapter/adapter_model.safetensors").is_file()
    assert not (result.model_dir / "adapter_config.json").exists()
    weights = load_file(f"{result.model_dir}/model.safetensors")
    assert not [k for k in weights if "lora" in k]
    base = load_file(f"{tiny_st_dir}/model.safetensors")
    changed = [k for k in base if not torch.equal(base[k], weights[k])]
    assert changed and all(k.endswith(("query.weight", "query.bias", "value.weight", "value.bias")) for k in changed)
    assert SentenceTransformer(str(result.model_dir), device="cpu").encode(["the film"]).shape == (1, 32)
    # the adapter alone loads with peft on the base backbone and matches the merged weights
    adapted = PeftModel.from_pretrained(AutoModel.from_pretrained(tiny_st_dir), str(tmp_path / "run/adapter")).eval()
    merged = AutoModel.from_pretrained(str(result.model_dir)).eval()
    ids = {"input_ids": torch.tensor([[2, 5, 9, 7, 3]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    with torch.no_grad():
        assert torch.allclose(adapted(**ids).last_hidden_state, merged(**ids).last_hidden_state, atol=1e-4)


def test_freeze_keeps_embeddings_and_lower_layers_and_refuses_to_freeze_everything(tmp_path, tiny_st_dir):
    cfg = _cfg(tmp_path, tiny_st_dir, rows=40, method={"kind": "freeze", "freeze": {"layers": 1}}, training={"epochs": 1})
    result = train(cfg, prepare_data(cfg), tmp_path / "run")
    base, after = load_file(f"{tiny_st_dir}/model.safetensors"), load_file(f"{result.model_dir}/model.safetensors")
    frozen = [k for k in base if k.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [k for k in base if k.startswith("encoder.layer.1.")]
    assert frozen and all(torch.equal(base[k], after[k]) for k in frozen)
    assert any(not torch.equal(base[k], after[k]) for k in trained)
    with pytest.raises(MethodError, match="would freeze all 2 layers"):
        model = task.load_model(tiny_st_dir, cfg)
        task.apply_method(model, cfg.method.model_copy(update={"freeze": cfg.method.freeze.model_copy(update={"layers": 2})}))


def test_no_duplicates_batches_keep_a_positive_out_of_other_rows_negatives(tmp_path, tiny_st_dir):
    from sentence_transformers import SentenceTransformerTrainer

    from tunesmith.families.embedding.train import training_arguments

    cfg = _cfg(tmp_path, tiny_st_dir)
    rows = make_pairs(32, seed=1)
    rows["positive"] = [f"shared answer {i % 4}" for i in range(32)]  # 8 queries per answer
    ds = task.to_dataset(rows.assign(negatives=[[]] * 32, score=None), scored=False, negatives=0)
    args = training_arguments(cfg, str(tmp_path / "ck"), "fp32", n_train=len(ds), has_eval=False)
    model = task.load_model(tiny_st_dir, cfg)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=ds,
                                         loss=task.build_loss(model, cfg, scored=False))
    batches = [b for b in trainer.get_train_dataloader().batch_sampler]
    assert batches and all(len({ds[i]["positive"] for i in b}) == len(b) for b in batches)
    assert max(len(b) for b in batches) <= 4  # only 4 distinct positives exist: a batch never repeats one


def test_rows_without_hard_negatives_get_other_rows_positives_so_reviewed_negatives_train():
    """A reviewed pair brings hard negatives; the rows before it have none. Every row gets the most any row has:
    its own first, then other rows' positives (never its own query or positive), so none is thrown away."""
    import pandas as pd

    rows = pd.DataFrame({"query": ["q1", "q2", "q3"], "positive": ["p1", "p2", "p3"],
                         "negatives": [[], ["n2a", "n2b"], ["n3"]], "score": [None] * 3})
    assert task.negatives_per_row([rows]) == 2
    ds = task.to_dataset(rows, scored=False, negatives=2)
    assert ds.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert (ds[1]["negative_1"], ds[1]["negative_2"]) == ("n2a", "n2b") and ds[2]["negative_1"] == "n3"
    for row in ds:
        negatives = [row["negative_1"], row["negative_2"]]
        assert len(set(negatives)) == 2 and not {row["anchor"], row["positive"]} & set(negatives), row
    assert set(task.fill_negatives(rows, 2)[0]) <= {"p2", "p3", "n2a", "n2b", "n3"}


def test_losses_follow_the_data_and_config(tmp_path, tiny_st_dir):
    from sentence_transformers.sentence_transformer import losses

    cfg = _cfg(tmp_path, tiny_st_dir, embedding={"matryoshka_dims": [32, 16], "loss": "cached-mnrl"})
    model = task.load_model(tiny_st_dir, cfg)
    loss = task.build_loss(model, cfg, scored=False)
    assert isinstance(loss, losses.MatryoshkaLoss) and isinstance(loss.loss, losses.CachedMultipleNegativesRankingLoss)
    assert isinstance(task.build_loss(model, _cfg(tmp_path, tiny_st_dir), scored=True), losses.CoSENTLoss)
    with pytest.raises(ValueError, match="exceed the model's 32 dims"):
        task.build_loss(model, _cfg(tmp_path, tiny_st_dir, embedding={"matryoshka_dims": [64]}), scored=False)


def test_scored_pairs_train_with_cosent_and_report_correlations(tmp_path, tiny_st_dir):
    pairs = make_pairs(60, seed=2, negatives=True)
    rows = [{"a": q, "b": p, "sim": 1.0} for q, p in zip(pairs["query"], pairs["positive"], strict=True)]
    rows += [{"a": q, "b": n[0], "sim": 0.0} for q, n in zip(pairs["query"], pairs["negative"], strict=True)]
    path = tmp_path / "sts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = config_from_dict({"name": "s", "task": "embedding", "data": {"path": str(path), "query_column": "a",
                            "positive_column": "b", "score_column": "sim"}, "model": {"base": tiny_st_dir},
                            "training": {"epochs": 1, "batch_size": 16}, "evaluation": {"bootstrap": {"samples": 100}}})
    bundle = prepare_data(cfg)
    report = evaluate(cfg, bundle, train(cfg, bundle, tmp_path / "run").model_dir)
    assert report.primary_metric == "spearman" and set(report.tuned) == {"spearman", "pearson"}
    assert "uplift_ci_low.spearman" in report.flat_metrics()


def test_resume_continues_from_the_last_committed_checkpoint(tmp_path, tiny_st_dir):
    import shutil

    cfg = _cfg(tmp_path, tiny_st_dir, rows=40, training={"max_steps": 4, "eval_steps": 2, "keep_checkpoints": True})
    bundle = prepare_data(cfg)
    first = train(cfg, bundle, tmp_path / "run")
    shutil.rmtree(first.model_dir)  # as if killed after the last checkpoint, before model/ was written
    shutil.rmtree(tmp_path / "run/checkpoints/checkpoint-4")
    resumed = train(cfg, bundle, tmp_path / "run", resume=True)
    assert resumed.log_history[-1]["step"] == 4 and (resumed.model_dir / "modules.json").is_file()
    changed = _cfg(tmp_path, tiny_st_dir, rows=40, training={"max_steps": 4, "eval_steps": 2, "learning_rate": 1e-3})
    shutil.rmtree(resumed.model_dir)
    with pytest.raises(TrainingError, match="training.learning_rate"):
        train(changed, bundle, tmp_path / "run", resume=True)


def test_a_distilled_student_embeds_like_its_teacher_and_is_compared_with_it(tmp_path, tiny_st_dir):
    """sentence-transformers' distillation recipe: a 1-layer student's embeddings regress to a fine-tuned teacher's
    (MSE on the training texts and on unlabeled ones), and the report compares both on MRR@10 with a CI."""
    from sentence_transformers import SentenceTransformer

    from tunesmith.training.distill import read_distill_record, shrink_layers
    from tunesmith.training.distill_report import compare_distilled

    cfg = _cfg(tmp_path, tiny_st_dir)
    bundle = prepare_data(cfg)
    teacher = train(cfg, bundle, tmp_path / "teacher").model_dir
    more = tmp_path / "more.txt"
    extra = make_pairs(30, seed=11)["query"].tolist()
    more.write_text("\n".join([*extra, "", bundle.test["query"].iloc[0]]) + "\n", encoding="utf-8")
    student_cfg = _cfg(tmp_path, tiny_st_dir, training={"epochs": 6}, method={
        "kind": "distill", "distill": {"teacher": str(teacher), "kd_weight": 1.0, "hard_weight": 0.5,
                                       "student_layers": 1, "unlabeled": str(more), "compare_without_kd": False}})
    result = train(student_cfg, bundle, tmp_path / "student")
    record = read_distill_record(tmp_path / "student")
    skipped = record["synthetic_skipped"]
    assert record["synthetic_rows"] + sum(skipped.values()) == len(extra) + 2 and record["synthetic_rows"] > 20
    assert skipped["in_a_split"] >= 1 and skipped["empty"] == 1 and result.method == "distill"

    texts = bundle.test["query"].tolist()
    t = SentenceTransformer(str(teacher), device="cpu").encode(texts, normalize_embeddings=True)
    s = SentenceTransformer(str(result.model_dir), device="cpu").encode(texts, normalize_embeddings=True)
    untrained = SentenceTransformer(tiny_st_dir, device="cpu")
    shrink_layers(untrained[0].model, 1)
    u = untrained.encode(texts, normalize_embeddings=True)
    assert (s * t).sum(1).mean() > (u * t).sum(1).mean() + 0.05  # closer to the teacher than where it started
    doc = compare_distilled(student_cfg, bundle, tmp_path / "student", result.model_dir)
    assert doc["metric"] == "mrr@10" and doc["models"]["student"]["params"] < doc["models"]["teacher"]["params"]
    assert doc["gap"]["ci_low"] <= doc["gap"]["delta"] <= doc["gap"]["ci_high"]

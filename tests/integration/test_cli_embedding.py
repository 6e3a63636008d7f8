"""`tunesmith run` for embedding on a tiny BERT wrapped as a sentence-transformers model: train, retrieval
evaluation vs base, gates, report, registry with lineage, and the champion compared on the next run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.integration.test_cli_run import in_process, tunesmith
from tests.toy_pairs import make_pairs

from tunesmith.config import config_from_dict
from tunesmith.families.embedding.model import load_model

pytestmark = pytest.mark.integration


def write_project(tmp_path: Path, tiny_model_dir: str) -> Path:
    st_dir = tmp_path / "tiny-st"  # the tiny BERT (tokenizer trained in the test) + mean pooling + normalize
    cfg = config_from_dict({"name": "x", "task": "embedding", "data": {"path": "x"}, "model": {"max_length": 32}})
    load_model(tiny_model_dir, cfg).save_pretrained(str(st_dir))
    rows = make_pairs(90, seed=11, negatives=True).to_dict("records")
    rows[4] = {"query": "a query without its answer"}  # quarantined with its line, not lost
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "name": "toy-search", "task": "embedding", "seed": 5,
        "data": {"path": "pairs.jsonl", "split": {"eval": 0.15, "test": 0.25}},
        "model": {"base": str(st_dir), "max_length": 32},
        "training": {"epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "early_stopping_patience": None},
        "evaluation": {"bootstrap": {"samples": 200}},
        "gates": ["recall@10 >= 0.3", "uplift.mrr@10 > 0", "vs_champion.mrr@10 >= -1"],
    }
    (tmp_path / "config.yaml").write_text(json.dumps(config))
    return tmp_path / "config.yaml"


def test_embedding_run_registers_a_sentence_transformers_model_and_compares_the_champion(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    write_project(tmp_path, tiny_model_dir)
    out = tunesmith("run", "config.yaml", cwd=tmp_path).stdout
    assert "gate decision: PASSED" in out and "registered toy-search version 1" in out
    assert "mrr@10" in out and "base model" in out

    run = next((tmp_path / ".tunesmith/runs/toy-search").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["flat"]["uplift.mrr@10"] > 0 and "uplift_ci_low.recall@10" in metrics["flat"]
    assert metrics["queries"] > 0 and metrics["corpus"] > metrics["queries"]
    quarantine = (run / "quarantine.jsonl").read_text().splitlines()
    assert len(quarantine) == 1 and "pairs.jsonl:5" in quarantine[0] and "missing_positive" in quarantine[0]
    html = (run / "report.html").read_text()
    assert "Sample queries (top hit)" in html and "test queries retrieve from a corpus" in html
    assert SentenceTransformer(str(run / "model"), device="cpu").encode(["the film"]).shape == (1, 32)

    assert metrics["lineage"]["task"] == "embedding" and metrics["lineage"]["data_fingerprint"]

    in_process("models", "promote", "toy-search", "--reason", "first champion", cwd=tmp_path)
    out = in_process("run", "config.yaml", "--set", "training.learning_rate=2e-3", cwd=tmp_path).stdout
    second = max((tmp_path / ".tunesmith/runs/toy-search").iterdir())
    metrics = json.loads((second / "metrics.json").read_text())
    assert metrics["champion_status"] == "compared" and "mrr@10" in metrics["vs_champion"]

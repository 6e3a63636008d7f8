"""`tunesmith reproduce NAME:VERSION`: the stored config re-run gives the same weights hash and metrics; the run
records library versions and hardware; changed data is refused with a clear message."""

from __future__ import annotations

import mlflow
import pytest
import yaml
from tests.integration.test_cli_run import tunesmith, write_project
from tests.toy import make_reviews

pytestmark = pytest.mark.integration


def test_reproduce_a_registered_version_and_refuse_changed_data(tmp_path, tiny_model_dir):
    write_project(tmp_path, tiny_model_dir, ["accuracy >= 0.5"], rows=120)
    tunesmith("run", "config.yaml", "--set", "training.epochs=1", "--set", "data.checks.label_issues.enabled=false",
              cwd=tmp_path)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / '.tunesmith/mlflow.db'}")
    version = client.get_model_version("toy-sentiment", "1")
    tags = client.get_run(version.run_id).data.tags
    for key in ("torch_version", "transformers_version", "peft_version", "trl_version",
                "sentence-transformers_version", "tunesmith_version", "cpu_model", "torch_threads", "device"):
        assert tags.get(key) and version.tags.get(key) == tags[key], key
    assert len(version.tags["weights_sha256"]) == 64

    out = tunesmith("reproduce", "toy-sentiment:1", cwd=tmp_path).stdout
    assert "weights: identical" in out and "REPRODUCED" in out and "NOT REPRODUCED" not in out
    compared = int(out.split("metrics: ")[1].split("/")[1].split()[0])
    assert compared >= 5 and f"{compared}/{compared} identical" in out
    assert len(client.get_latest_versions("toy-sentiment")) == 1  # the reproduction registered nothing

    # The data changed: refused before any training, naming both fingerprints.
    df = make_reviews(130, seed=7)
    df.to_csv(tmp_path / "reviews.csv", index=False)
    proc = tunesmith("reproduce", "toy-sentiment:1", cwd=tmp_path, check_code=2)
    assert "the data changed since it was trained" in proc.stderr and "Traceback" not in proc.stderr
    proc = tunesmith("reproduce", "toy-sentiment:9", cwd=tmp_path, check_code=2)
    assert "no such registered version" in proc.stderr
    stored = [yaml.safe_load((d / "config.yaml").read_text()) for d in (tmp_path / ".tunesmith/runs/toy-sentiment").iterdir()
              if (d / "config.yaml").is_file()]
    assert stored and all(c["data"]["path"] == str(tmp_path / "reviews.csv") for c in stored)

"""Lineage tags: config hash, git state, base model, gate verdict, library versions, no hostname."""

from __future__ import annotations

import socket
import subprocess

from tunesmith.config import config_from_dict
from tunesmith.registry.lineage import (
    REQUIRED_KEYS,
    collect_environment,
    collect_lineage,
    gate_summary,
    git_state,
)


def test_lineage_has_every_required_key_as_a_string(cfg):
    lineage = collect_lineage(
        cfg,
        data_fingerprint="abc123",
        base_model_path="/models/x",
        base_revision="r1",
        gate_decision={"passed": True, "summary": "macro_f1 0.91 >= 0.8"},
    )
    assert set(REQUIRED_KEYS) <= set(lineage)
    assert all(isinstance(v, str) for v in lineage.values())
    assert lineage["config_hash"] == cfg.fingerprint()
    assert lineage["data_fingerprint"] == "abc123"
    assert lineage["base_model_revision"] == "r1"
    assert (lineage["gate_decision"], lineage["gate_summary"]) == ("passed", "macro_f1 0.91 >= 0.8")
    assert lineage["tunesmith_version"] not in ("", "not installed")
    assert socket.gethostname() not in " ".join(lineage.values())


def test_base_revision_falls_back_to_the_hub_snapshot_in_the_path(cfg):
    sha = "0123456789abcdef0123456789abcdef01234567"
    lineage = collect_lineage(cfg, data_fingerprint="x", base_model_path=f"/hf/models--a--b/snapshots/{sha}")
    assert lineage["base_model_revision"] == sha
    assert collect_lineage(cfg, data_fingerprint="x")["gate_decision"] == "not_run"


def test_gate_summary_from_a_failure_list():
    assert gate_summary({"passed": False, "failures": ["macro_f1 0.5 < 0.8", "ece 0.3 > 0.1"]}) == (
        "failed",
        "macro_f1 0.5 < 0.8; ece 0.3 > 0.1",
    )


def test_gate_summary_from_gate_decision_rules():
    decision = {
        "passed": False,
        "rules": [
            {"rule": "macro_f1 >= 0.8", "value": 0.71234, "passed": False},
            {"rule": "ece <= 0.1", "value": 0.05, "passed": True},
            {"rule": "vs_champion.accuracy >= 0", "value": None, "passed": False},
        ],
    }
    verdict, summary = gate_summary(decision)
    assert verdict == "failed"
    assert (
        summary
        == "1/3 rules passed; failed: macro_f1 >= 0.8 (got 0.7123); vs_champion.accuracy >= 0 (got not measured)"
    )
    assert gate_summary({"passed": True, "rules": []}) == ("passed", "no rules configured")


def test_collect_environment_names_versions_and_hardware():
    env = collect_environment()
    assert {
        "python_version",
        "torch_version",
        "transformers_version",
        "mlflow_version",
        "cpu_count",
        "device",
    } <= set(env)


def test_git_state_outside_and_inside_a_repo(tmp_path):
    assert git_state(tmp_path) == ("unknown", "unknown")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "config.yaml").write_text("name: a\n")
    subprocess.run([*git, "add", "config.yaml"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=tmp_path, check=True)
    commit, dirty = git_state(tmp_path)
    assert len(commit) == 40 and dirty == "false"
    (tmp_path / "config.yaml").write_text("name: b\n")
    assert git_state(tmp_path) == (commit, "true")
    cfg = config_from_dict({"name": "a", "data": {"path": "d.jsonl"}}, source=str(tmp_path / "config.yaml"))
    # the commit of the config's repo, not of the cwd's
    assert collect_lineage(cfg, data_fingerprint="x")["git_commit"] == commit

"""The launcher commands `tunesmith train --launcher ... --nproc N` re-executes (no processes started here)."""

from __future__ import annotations

import sys

from tunesmith.training.distributed import Launcher, is_main_process, launch_command, world_size


def test_launch_commands_rerun_the_same_cli_under_torchrun_and_accelerate(monkeypatch):
    args = ["train", "cfg.yaml", "--run-dir", "/runs/x", "--set", "training.batch_size=8"]
    torchrun = launch_command(Launcher.TORCHRUN, 2, args)
    assert torchrun[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--nproc_per_node=2" in torchrun
    assert torchrun[-len(args) - 2:] == ["-m", "tunesmith.cli", *args]
    accel = launch_command(Launcher.ACCELERATE, 4, args)
    assert "--multi_gpu" in accel and "--num_processes=4" in accel and accel[-len(args):] == args
    fsdp = launch_command(Launcher.ACCELERATE, 4, args, accelerate_config="fsdp.yaml")
    assert "--config_file=fsdp.yaml" in fsdp and "--multi_gpu" not in fsdp  # the file decides FSDP / DeepSpeed

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not is_main_process() and world_size() == 2
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()

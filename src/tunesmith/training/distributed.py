"""Multi-process training: re-launch the same `tunesmith train` under torchrun or accelerate (DDP).

    tunesmith train config.yaml --launcher torchrun --nproc 2     # 2 processes; gloo on CPU, nccl on GPUs

The launching process only picks the run folder and waits; every rank then runs the ordinary command with
`--run-dir` fixed, and the transformers Trainer sees torchrun's environment (RANK, WORLD_SIZE, ...) and wraps
the model in DistributedDataParallel. `training.batch_size` is per process, as in transformers: the global batch
is batch_size x grad_accum x nproc. Only rank 0 writes the data card, checkpoints, the final model and the adapter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from enum import Enum

import torch


class Launcher(str, Enum):
    NONE = "none"  # this process trains
    TORCHRUN = "torchrun"  # torch.distributed.run --standalone --nproc_per_node N
    ACCELERATE = "accelerate"  # accelerate launch: DDP, or FSDP / DeepSpeed from --accelerate-config


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in a single process and on rank 0: the one process that writes files and registers."""
    return rank() == 0


def in_launched_process() -> bool:
    """Already started by torchrun / accelerate: do not launch again."""
    return "LOCAL_RANK" in os.environ and world_size() > 1


def launch_command(launcher: Launcher, nproc: int, cli_args: list[str], accelerate_config: str | None = None) -> list[str]:
    """The command that starts `nproc` copies of `python -m tunesmith.cli <cli_args>`."""
    if launcher is Launcher.TORCHRUN:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                "-m", "tunesmith.cli", *cli_args]
    if launcher is Launcher.ACCELERATE:
        if accelerate_config:  # FSDP / DeepSpeed / mixed precision come from the accelerate config file
            flags = [f"--config_file={accelerate_config}", f"--num_processes={nproc}"]
        else:  # plain DDP; on a CPU-only machine the Trainer (use_cpu) still sets up gloo
            flags = ["--multi_gpu", f"--num_processes={nproc}", "--num_machines=1", "--mixed_precision=no",
                     "--dynamo_backend=no"]
        return [sys.executable, "-m", "accelerate.commands.launch", *flags, "-m", "tunesmith.cli", *cli_args]
    raise ValueError(f"launcher {launcher.value!r} does not start processes")


def relaunch(launcher: Launcher, nproc: int, cli_args: list[str], accelerate_config: str | None = None) -> int:
    """Run the launcher in the foreground; returns its exit code (the first failing rank's)."""
    env = {**os.environ, "TUNESMITH_LAUNCHER": launcher.value}
    env.setdefault("OMP_NUM_THREADS", str(max((os.cpu_count() or 1) // nproc, 1)))  # no oversubscribed CPUs
    return subprocess.run(launch_command(launcher, nproc, cli_args, accelerate_config), env=env).returncode


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

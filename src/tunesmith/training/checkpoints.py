"""Crash-safe checkpoints: a checkpoint counts only once its completion marker is on disk.

transformers' `Trainer._save_checkpoint` writes straight into `checkpoint-N` (weights, optimizer, scheduler,
RNG, trainer state, one file after another), so a run killed mid-save leaves a directory that looks like a
checkpoint but is not one. `AtomicCheckpoints` runs right after each save: it fsyncs every file, then writes
`tunesmith-complete.json` (file list with sizes) through a temp file + `os.replace`, and only then prunes older
checkpoints (the Trainer's own rotation is turned off so it can never delete the last complete checkpoint
before the new one is committed). `find_last_complete_checkpoint` trusts only marked, size-verified dirs.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

from tunesmith.io import atomic_dir, atomic_write_text, fsync_path, fsync_tree, recover_dir  # noqa: F401 (re-exported)

MARKER = "tunesmith-complete.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def _file_sizes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER
    }


def mark_complete(checkpoint: Path) -> None:
    """Commit a fully written checkpoint dir: fsync its files, then write the marker last."""
    fsync_tree(checkpoint)
    step = int(_CHECKPOINT_RE.match(checkpoint.name).group(1)) if _CHECKPOINT_RE.match(checkpoint.name) else None
    atomic_write_text(checkpoint / MARKER, json.dumps({"step": step, "files": _file_sizes(checkpoint)}, indent=1))
    fsync_path(checkpoint)  # the marker's rename is on disk, not only in the page cache


def is_complete(checkpoint: Path) -> bool:
    """True when the marker exists and every file it lists is present with the recorded size."""
    try:
        files = json.loads((checkpoint / MARKER).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(files) and all(
        (checkpoint / name).is_file() and (checkpoint / name).stat().st_size == size for name, size in files.items()
    )


def _checkpoint_dirs(output_dir: Path) -> list[tuple[int, Path]]:
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints under `output_dir`, oldest step first."""
    return [p for _, p in _checkpoint_dirs(Path(output_dir)) if is_complete(p)]


def find_last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step, ignoring half-written dirs and temp dirs."""
    done = complete_checkpoints(output_dir)
    return done[-1] if done else None


def remove_incomplete(output_dir: str | Path) -> list[Path]:
    """Delete checkpoint dirs without a valid marker (leftovers of a killed run) and stray temp dirs."""
    output_dir = Path(output_dir)
    removed = [p for _, p in _checkpoint_dirs(output_dir) if not is_complete(p)]
    if output_dir.is_dir():
        removed += [p for p in output_dir.iterdir() if p.name.startswith(("tmp-", ".tmp-"))]
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed


def prune(output_dir: str | Path, keep: int, protect: str | Path | None = None) -> None:
    """Keep the newest `keep` complete checkpoints plus `protect` (the best one); delete older complete ones."""
    done = complete_checkpoints(output_dir)
    protected = Path(protect).resolve() if protect else None
    for path in done[: max(len(done) - keep, 0)]:
        if path.resolve() != protected:
            shutil.rmtree(path)


class AtomicCheckpoints(TrainerCallback):
    """Marks each checkpoint complete right after the Trainer writes it, then rotates old ones."""

    def __init__(self, keep: int):
        self.keep = keep

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if args.should_save and checkpoint.is_dir():
            mark_complete(checkpoint)
            fsync_path(checkpoint.parent)
            prune(args.output_dir, self.keep, protect=state.best_model_checkpoint)
        return control

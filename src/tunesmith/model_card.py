"""`model/tunesmith.json`: what a model dir is, written with every model, so no stage guesses it from architectures.

    write_model_card(run_dir / "model", cfg)        # family, labels or targets, versions (training writes it)
    update_model_card(model_dir, thresholds={...})  # later facts: multi-label thresholds tuned on eval
    card = read_model_card(model_dir)               # None for a model dir written before the card existed

Serving, evaluation and the loop read the family from here; a dir without the card (registered before it existed,
or trained elsewhere) falls back to the family's detection rules in `tunesmith.serving.models`.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from tunesmith.io import atomic_write_text

CARD_FILE = "tunesmith.json"
CARD_VERSION = 1
LIBRARIES = ("tunesmith", "transformers", "torch", "peft", "sentence-transformers")


def write_model_card(model_dir: str | Path, cfg, **extra: Any) -> Path:
    """Write the card of the model in `model_dir`, trained by `cfg` (the family adds its own fields)."""
    from tunesmith.families import get

    model_dir = Path(model_dir)
    card = {"card_version": CARD_VERSION, "family": cfg.task, "name": cfg.name, "base_model": cfg.model.base,
            "method": getattr(cfg.method.kind, "value", cfg.method.kind), "versions": _versions(),
            **get(cfg.task).describe_model(model_dir), **extra}
    return atomic_write_text(model_dir / CARD_FILE, json.dumps(card, indent=1, sort_keys=False) + "\n")


def update_model_card(model_dir: str | Path, **fields: Any) -> Path | None:
    """Add fields to an existing card (None when the dir has none)."""
    card = read_model_card(model_dir)
    if card is None:
        return None
    card.update(fields)
    return atomic_write_text(Path(model_dir) / CARD_FILE, json.dumps(card, indent=1) + "\n")


def read_model_card(model_dir: str | Path) -> dict | None:
    """The card, or None when the dir has none or it is not a JSON object naming a family."""
    path = Path(model_dir) / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and isinstance(card.get("family"), str) else None


def _versions() -> dict[str, str]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out

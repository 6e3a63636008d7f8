"""Which texts a model saw in training: 8-byte hashes shipped beside its weights as `seen_texts.npy`.

    write_seen_texts(run_dir / "model", [*bundle.train["text"], *bundle.eval["text"]])
    seen = read_seen_texts(champion_dir)   # None when the model dir carries no record

A later run compares a challenger with the champion only on test rows the champion never saw, so rows it
trained on (another seed, other split shares, more data) cannot inflate its score. The file is a plain
uint64 `.npy` array, always read with `allow_pickle=False`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tunesmith.data.fingerprint import text_key
from tunesmith.io import atomic_write_bytes

SEEN_TEXTS_FILE = "seen_texts.npy"


def text_hashes(texts: Iterable[str]) -> np.ndarray:
    """The 8-byte blake2b hash of each normalized text, as a uint64 array in input order."""
    digests = (hashlib.blake2b(text_key(str(t)).encode("utf-8"), digest_size=8).digest() for t in texts)
    return np.fromiter((int.from_bytes(d, "little") for d in digests), dtype=np.uint64)


def write_seen_texts(model_dir: str | Path, texts: Iterable[str]) -> Path:
    """Write the sorted, unique hashes of `texts` to `model_dir/seen_texts.npy` atomically; returns the path."""
    buf = io.BytesIO()
    np.save(buf, np.unique(text_hashes(texts)), allow_pickle=False)
    return atomic_write_bytes(Path(model_dir) / SEEN_TEXTS_FILE, buf.getvalue())


def read_seen_texts(model_dir: str | Path) -> set[int] | None:
    """The text hashes a model dir records as seen in training, or None when it has no `seen_texts.npy`.

    Raises:
        ValueError: the file exists but is not a 1-D uint64 array (corrupt, or not written by tunesmith).
    """
    path = Path(model_dir) / SEEN_TEXTS_FILE
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable seen-texts array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint64 or arr.ndim != 1:
        raise ValueError(f"{path}: expected a 1-D uint64 array of text hashes, got {getattr(arr, 'dtype', type(arr))}")
    return set(arr.tolist())

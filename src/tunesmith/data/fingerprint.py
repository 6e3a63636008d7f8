"""Content hashes: one per row (for the fingerprint), one per text (for seeded, order-free splits and for
finding the same text in two splits), and one per dataset.

The fingerprint is a sha256 over a schema description (output columns, slice columns, the ordered label
list) and, per split, the sorted row hashes; a row hash covers the NFC-normalized, whitespace-collapsed
text, the label and the slice values. So the same rows give the same fingerprint whatever the file
format or the row order, and any change to a text, a label, a slice value or a split changes it.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.data.schema import LABEL, TEXT, plain

FINGERPRINT_VERSION = 1  # bump when what goes into the hash changes, so old and new never compare equal
SPLITS = ("train", "eval", "test")


def normalize_text(text: str) -> str:
    """NFC, and every run of whitespace collapsed to one space (so CRLF vs LF or re-wrapping do not count)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_key(text: str) -> str:
    """What makes two texts "the same" for splits and leakage: normalized as above, and casefolded."""
    return normalize_text(text).casefold()


def text_digests(texts: pd.Series) -> list[str]:
    """sha256 hex of each text's `text_key`: the split key, so identical texts always land in the same split.

    Hex, not bytes: pandas compares bytes through numpy, which drops trailing NULs (isin, factorize).
    """
    return [hashlib.sha256(text_key(t).encode("utf-8")).hexdigest() for t in texts.astype(str)]


def row_digests(rows: pd.DataFrame, slice_columns: Sequence[str] = ()) -> list[bytes]:
    """sha256 of each row's normalized text, label and slice values."""
    if rows.empty:
        return []
    parts = [rows[LABEL].astype(str)] + [rows[c].map(_cell) for c in slice_columns]
    keys = rows[TEXT].map(normalize_text).astype(str).str.cat(parts, sep="\x1f")
    return [hashlib.sha256(k.encode("utf-8")).digest() for k in keys]


def _cell(v: Any) -> str:
    v = plain(v)
    if v is None:
        return "\x00"
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # 2001 from parquet and "2001" from CSV are the same value
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def split_keys(digests: Sequence[bytes], seed: int, salt: str) -> np.ndarray:
    """A seeded pseudo-random uint64 per row that depends on its content only, not on its position."""
    key = f"{seed}:{salt}".encode()[:64]
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(d, key=key, digest_size=8).digest(), "big") for d in digests),
        dtype=np.uint64, count=len(digests),
    )


def dataset_fingerprint(digests: Mapping[str, Sequence[bytes]], labels: Sequence[str], slice_columns: Sequence[str]) -> str:
    """sha256 hex over the schema and the sorted row hashes of each split."""
    schema = {
        "version": FINGERPRINT_VERSION,
        "columns": {"text": TEXT, "label": LABEL, "slices": list(slice_columns)},
        "labels": list(labels),
    }
    h = hashlib.sha256(json.dumps(schema, sort_keys=True).encode())
    for name in SPLITS:
        h.update(f"\n{name}:{len(digests.get(name, ()))}\n".encode())
        for d in sorted(digests.get(name, ())):
            h.update(d)
    return h.hexdigest()

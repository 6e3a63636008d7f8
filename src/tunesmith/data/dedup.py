"""Exact and near-duplicate texts, within a split and across splits (leakage).

Exact: texts compare by `fingerprint.text_key` (NFC, whitespace collapsed, casefolded), via the sha256
already on every row. Near: MinHash (datasketch, bulk generator) over sets of word n-grams; banded LSH
finds candidate pairs and each candidate is confirmed by the exact Jaccard of the two n-gram sets, so the
threshold means what it says. Band keys live in one numpy array (rows x bands, uint64), so a million rows
take about 25 MB of index and candidate search is a sort per band, not a dict of Python objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
from datasketch import MinHash

_WORD = re.compile(r"\w+")
_WINDOW = 64  # in a band, each key is paired with at most this many later rows sharing it (bounds huge buckets)


def shingles(text: str, ngram: int = 2) -> set[bytes]:
    """The set of casefolded word n-grams of `text` (texts shorter than n words give one shingle)."""
    words = _WORD.findall(text.casefold())
    if len(words) <= ngram:
        return {" ".join(words).encode("utf-8") or text.encode("utf-8")}
    return {" ".join(words[i:i + ngram]).encode("utf-8") for i in range(len(words) - ngram + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def lsh_bands(threshold: float, num_perm: int, min_recall: float = 0.985) -> tuple[int, int]:
    """(bands, rows per band): the most selective banding that still makes a pair at `threshold` a candidate
    with probability >= min_recall (1 - (1 - t^r)^b). Recall is favoured because candidates are verified."""
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if b < 1 or 1 - (1 - threshold**r) ** b < min_recall:
            break
        best = (b, r)
    return best


def _band_keys(signatures: np.ndarray, bands: int, rows: int, mixers: np.ndarray) -> np.ndarray:
    """One uint64 per (text, band): a random linear combination of the band's hash values (mod 2^64)."""
    sig = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
    with np.errstate(over="ignore"):
        keys = (sig * mixers).sum(axis=2, dtype=np.uint64)
        keys ^= keys >> np.uint64(29)
    return keys


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@dataclass
class NearDuplicates:
    pairs: np.ndarray  # (k, 2) int64 indices i < j into the texts, confirmed by exact Jaccard
    similarity: np.ndarray  # (k,) exact Jaccard of each pair
    candidates: int  # pairs the LSH proposed before verification
    bands: int
    rows_per_band: int


def near_duplicate_pairs(
    texts: Sequence[str], *, threshold: float = 0.7, num_perm: int = 128, ngram: int = 2, seed: int = 1,
    batch_size: int = 20_000,
) -> NearDuplicates:
    """Pairs of texts whose word n-gram sets have Jaccard similarity >= threshold.

    Texts are processed in batches: shingles and MinHash signatures of one batch at a time, only the band
    keys are kept. Pass distinct texts (collapse exact duplicates first): identical texts share every band.
    """
    n = len(texts)
    keys = np.empty((n, lsh_bands(threshold, num_perm)[0]), dtype=np.uint64)
    for part in _batches(n, batch_size):
        keys[part] = band_keys(texts[part], threshold=threshold, num_perm=num_perm, ngram=ngram, seed=seed)
    return pairs_from_band_keys(keys, texts, threshold=threshold, num_perm=num_perm, ngram=ngram)


def band_keys(texts: Sequence[str], *, threshold: float = 0.7, num_perm: int = 128, ngram: int = 2, seed: int = 1
              ) -> np.ndarray:
    """The LSH band keys (len(texts) x bands, uint64) of a batch of texts: all that is kept of a text to find its
    near-duplicate candidates, so texts can be read, keyed and forgotten batch by batch."""
    bands, rows = lsh_bands(threshold, num_perm)
    mixers = np.random.default_rng(seed).integers(1, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    sets = [shingles(t, ngram) for t in texts]
    sig = np.vstack([m.hashvalues for m in MinHash.generator(sets, num_perm=num_perm, seed=seed)]) if sets else \
        np.empty((0, num_perm), dtype=np.uint64)
    return _band_keys(sig, bands, rows, mixers)


def pairs_from_band_keys(keys: np.ndarray | Sequence[np.ndarray], texts: Mapping[int, str] | Sequence[str], *, threshold: float = 0.7,
                         num_perm: int = 128, ngram: int = 2) -> NearDuplicates:
    """Candidate pairs from the band keys, each confirmed by exact Jaccard; `texts[i]` is only asked for the
    candidates (a mapping of those texts will do)."""
    return confirm_pairs(candidate_pairs(keys), texts, threshold=threshold, num_perm=num_perm, ngram=ngram)


def confirm_pairs(found: np.ndarray, texts: Mapping[int, str] | Sequence[str], *, threshold: float = 0.7,
                  num_perm: int = 128, ngram: int = 2) -> NearDuplicates:
    """The candidate pairs `found` whose exact Jaccard reaches the threshold."""
    bands, rows = lsh_bands(threshold, num_perm)
    pairs, sims = _verify(texts, found, threshold, ngram)
    return NearDuplicates(pairs, sims, len(found), bands, rows)


def candidate_pairs(keys: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Unique (i, j), i < j, that share a key in at least one band.

    `keys` is the (texts x bands) array, or one array of keys per band (a band at a time: bands read from disk).
    """
    columns = [keys[:, b] for b in range(keys.shape[1])] if isinstance(keys, np.ndarray) else keys
    found, n = [], None
    for column in columns:
        column = np.asarray(column)
        n = len(column)
        order = np.argsort(column, kind="stable")
        ranked = column[order]
        for d in range(1, min(_WINDOW, n - 1) + 1):
            same = ranked[:-d] == ranked[d:]
            if not same.any():
                break
            i, j = order[:-d][same], order[d:][same]
            found.append(np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    flat = np.unique(np.concatenate(found))
    return np.stack([flat // n, flat % n], axis=1)


def _verify(texts: Mapping[int, str] | Sequence[str], candidates: np.ndarray, threshold: float, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    cache: dict[int, set[bytes]] = {}

    def get(i: int) -> set[bytes]:
        if i not in cache:
            cache[i] = shingles(texts[i], ngram)
        return cache[i]

    sims = np.array([jaccard(get(int(i)), get(int(j))) for i, j in candidates], dtype=np.float64)
    keep = sims >= threshold - 1e-12 if len(sims) else np.zeros(0, dtype=bool)
    return candidates[keep], sims[keep]


# --- row-level findings over the train/eval/test frames --------------------------------------------------


class DupKind(str, Enum):
    """Why a row is flagged; a row may carry several kinds (one flag row each)."""

    LEAK_EXACT = "leak_exact"  # its text is in an earlier split (train < eval < test)
    LEAK_NEAR = "leak_near"  # a near-duplicate of a text in an earlier split
    CONFLICTING = "conflicting_labels"  # its text occurs with more than one label
    DUPLICATE = "duplicate"  # a later copy of a text in the same split (same label)
    NEAR_DUPLICATE = "near_duplicate"  # a near-duplicate of an earlier text in the same split


@dataclass
class DupFlags:
    """One row per (flagged row, kind): split, pos (row position in its frame), source, kind, of (the source
    it repeats), similarity (1.0 for exact)."""

    flags: pd.DataFrame
    unique_texts: int
    near: NearPairs | None
    near_conflicting_pairs: int  # confirmed near-duplicate pairs whose labels differ

    def rows(self, kind: DupKind) -> pd.DataFrame:
        return self.flags[self.flags["kind"] == kind.value]


def find_duplicates(
    splits: Mapping[str, pd.DataFrame], *, digest: str, text: str, label: str, source: str, order: str,
    near: NearPairs | None = None,
) -> DupFlags:
    """Exact and near-duplicates within each split and across splits, as row flags.

    Args:
        splits: frames in split order (train, eval, test); `digest` is the text_key hash of each row.
        near: confirmed near-duplicate pairs (`near_pairs_by_digest`), or None to skip near-duplicates.
    """
    names = list(splits)
    rows = pd.concat([
        pd.DataFrame({"split": k, "pos": np.arange(len(f)), "digest": f[digest].array, "label": f[label].array,
                      "source": f[source].array, "order": f[order].to_numpy()})  # .array: Arrow strings stay Arrow
        for k, f in enumerate(splits.values())
    ], ignore_index=True).sort_values(["split", "order"], kind="stable")
    rows["uid"] = pd.factorize(rows["digest"])[0]
    flags: list[pd.DataFrame] = []

    def flag(sel: pd.DataFrame, kind: DupKind, of: Any, similarity: Any = 1.0) -> None:
        if len(sel):
            flags.append(pd.DataFrame({"split": sel["split"].map(names.__getitem__).to_numpy(), "pos": sel["pos"].to_numpy(),
                                       "source": sel["source"].to_numpy(), "kind": kind.value, "of": of,
                                       "similarity": similarity}))

    first_any = rows.drop_duplicates("uid").set_index("uid")
    labels_per_text = rows.groupby("uid")["label"].nunique()
    conflicting = rows[rows["uid"].map(labels_per_text) > 1]
    flag(conflicting, DupKind.CONFLICTING, conflicting["uid"].map(first_any["source"]).to_numpy())
    firsts = rows.drop_duplicates(["split", "uid"])  # first row of each text in each split
    later = rows[rows.duplicated(["split", "uid"]) & (rows["uid"].map(labels_per_text) == 1)]
    first_in_split = firsts.set_index(["split", "uid"])["source"]
    flag(later, DupKind.DUPLICATE, [first_in_split[(s, u)] for s, u in zip(later["split"], later["uid"], strict=True)])
    earliest = firsts.drop_duplicates("uid").set_index("uid")  # the text's first split
    leaks = rows[rows["split"] > rows["uid"].map(earliest["split"])]
    flag(leaks, DupKind.LEAK_EXACT, leaks["uid"].map(earliest["source"]).to_numpy())

    near_conflicts = 0
    if near is not None and len(near.a):
        index = pd.Index(first_any["digest"].to_numpy())  # position = uid (first_any is indexed 0..n-1 by uid)
        a, b = index.get_indexer(near.a), index.get_indexer(near.b)
        present = (a >= 0) & (b >= 0)  # rows may have been sampled away
        uids = first_any.index.to_numpy()
        pairs = np.stack([uids[a[present]], uids[b[present]]], axis=1)
        near_conflicts = _flag_near(rows, firsts, pairs, near.similarity[present], flag)
    table = pd.concat(flags, ignore_index=True) if flags else pd.DataFrame(columns=["split", "pos", "source", "kind", "of", "similarity"])
    table = table.drop_duplicates(["split", "pos", "kind"]).reset_index(drop=True)
    return DupFlags(table, len(first_any), near, near_conflicts)


def _flag_near(rows: pd.DataFrame, firsts: pd.DataFrame, pairs: np.ndarray, similarity: np.ndarray, flag) -> int:
    """Flag the rows of the later text of each confirmed pair: same split -> near_duplicate, else leak_near."""
    if not len(pairs):
        return 0
    involved = np.unique(pairs)
    where: dict[int, list[tuple]] = {}  # uid -> [(split, order, source)] of its first row in each split
    for split, order, source, uid in firsts.loc[firsts["uid"].isin(involved), ["split", "order", "source", "uid"]] \
            .itertuples(index=False):
        where.setdefault(uid, []).append((split, order, source))
    sub = rows[rows["uid"].isin(involved)]
    rows_of = {key: sub.iloc[idx] for key, idx in sub.groupby(["split", "uid"]).indices.items()}
    labels = sub.groupby("uid")["label"].agg(frozenset).to_dict()
    conflicts = 0
    for (u, v), sim in zip(pairs.tolist(), similarity.tolist(), strict=True):
        conflicts += labels[u] != labels[v]
        for su, ou, src_u in where[u]:
            for sv, ov, src_v in where[v]:
                later_is_v = (sv, ov) > (su, ou)
                s, uid, of = (sv, v, src_u) if later_is_v else (su, u, src_v)
                kind = DupKind.NEAR_DUPLICATE if su == sv else DupKind.LEAK_NEAR
                flag(rows_of[(s, uid)], kind, of, round(sim, 4))
    return conflicts


def near_duplicate_groups(digests: Sequence[str], groups: np.ndarray, near: NearPairs) -> np.ndarray:
    """`groups` (a code per row, equal for identical texts) merged along confirmed near-duplicate pairs, so that
    a split that keeps a group together never puts two near-duplicates in different splits."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    groups = np.asarray(groups)
    digests = pd.Series(digests).reset_index(drop=True)  # Arrow strings stay Arrow: no Python str per row
    first = ~digests.duplicated().to_numpy()
    index, codes = pd.Index(digests[first]), groups[first]
    ia, ib = index.get_indexer(near.a), index.get_indexer(near.b)
    present = (ia >= 0) & (ib >= 0)
    if not present.any():
        return groups
    a, b = codes[ia[present]], codes[ib[present]]
    n = int(groups.max()) + 1
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1][groups]


@dataclass
class NearPairs:
    """Confirmed near-duplicate pairs keyed by text digest, so they stay valid through splitting and sampling."""

    a: np.ndarray  # digest of the first text of each pair
    b: np.ndarray
    similarity: np.ndarray
    stats: dict[str, Any]  # LSH parameters and candidate counts, for the data card


def near_pairs_by_digest(frames: Sequence[pd.DataFrame], *, digest: str, text: str, **near: Any) -> NearPairs:
    """Near-duplicate pairs among the distinct texts of `frames` (keyword arguments of `near_duplicate_pairs`)."""
    uniq = pd.concat([f[[digest, text]] for f in frames], ignore_index=True).drop_duplicates(digest)
    found = near_duplicate_pairs(uniq[text].astype(str).tolist(), **near)
    d = uniq[digest].to_numpy()
    stats = {**near, "bands": found.bands, "rows_per_band": found.rows_per_band, "candidates": found.candidates,
             "confirmed_pairs": len(found.pairs)}
    return NearPairs(d[found.pairs[:, 0]], d[found.pairs[:, 1]], found.similarity, stats)

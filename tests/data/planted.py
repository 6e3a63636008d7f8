"""A dataset with known defects, written by the tests: PII, exact and near-duplicates across splits, flipped labels.

Texts are 18-30 words drawn from a Zipf-distributed vocabulary plus 2-4 sentiment words that carry the label,
so a linear probe can learn the labels and unrelated texts share few word pairs (as real texts do).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

POSITIVE = ["wonderful", "excellent", "superb", "delightful", "brilliant", "moving", "charming", "masterful",
            "gripping", "beautiful", "funny", "touching", "clever", "stunning", "joyful"]
NEGATIVE = ["terrible", "awful", "boring", "dreadful", "tedious", "clumsy", "painful", "dull", "messy",
            "annoying", "bland", "lifeless", "shallow", "forgettable", "ugly"]
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "ge", "hu", "ji", "bo", "fe"]

# Planted PII per regex type: values that pass their checksums, in several formats.
PII_VALUES = {
    "EMAIL": ["jane.doe{i}@example.org", "m.ruiz+{i}@mail.example.com", "ops{i}@corp-example.net"],
    "PHONE": ["+31 6 1234 56{i:02d}", "(555) 123-45{i:02d}", "+44 20 7946 09{i:02d}", "555-867-53{i:02d}"],
    "CREDIT_CARD": ["4111 1111 1111 1111", "5500-0000-0000-0004", "4012888888881881", "3782 822463 10005"],
    "IBAN": ["NL91 ABNA 0417 1643 00", "GB82WEST12345698765432", "DE89 3704 0044 0532 0130 00"],
    "IP_ADDRESS": ["192.168.{i}.20", "10.0.{i}.1", "2001:db8::{i}:7334"],
    "NATIONAL_ID": ["123-45-67{i:02d}", "BSN 111222333", "12345678Z", "1112.22.333"],
}


@dataclass
class Planted:
    frames: dict[str, pd.DataFrame]  # train / eval / test as written
    exact_dups: set[tuple[str, int]] = field(default_factory=set)  # (split, row) copies within a split
    exact_leaks: set[tuple[str, int]] = field(default_factory=set)  # eval/test rows that copy a train text
    near_dups: set[tuple[str, int]] = field(default_factory=set)  # ~5%-edited copies (same split or later split)
    pii: dict[str, set[tuple[str, int]]] = field(default_factory=dict)  # type -> rows holding it
    pii_values: dict[tuple[str, int], str] = field(default_factory=dict)
    flipped: set[tuple[str, int]] = field(default_factory=set)


def _vocabulary(rng: np.random.Generator, n: int = 3000) -> list[str]:
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES, size=rng.integers(2, 4))))
    return sorted(words)


def _text(rng, vocab, p, label: str) -> str:
    words = list(rng.choice(vocab, size=rng.integers(18, 31), p=p))
    for _ in range(rng.integers(2, 5)):
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE if label == "pos" else NEGATIVE)))
    return " ".join(words)


def edit(text: str, rng: np.random.Generator, vocab: list[str], share: float = 0.05) -> str:
    """Replace, delete or insert ~share of the words (at least one edit)."""
    words = text.split()
    edits = max(1, round(share * len(words)))
    while " ".join(words) == text:  # an insert can undo a delete: edit until the text changed
        words = _edit_words(text.split(), edits, rng, vocab)
    return " ".join(words)


def _edit_words(words: list[str], edits: int, rng: np.random.Generator, vocab: list[str]) -> list[str]:
    for _ in range(edits):
        op, i = rng.integers(0, 3), int(rng.integers(0, len(words)))
        if op == 0:
            words[i] = str(rng.choice([w for w in vocab[:50] if w != words[i]]))
        elif op == 1 and len(words) > 3:
            del words[i]
        else:
            words.insert(i, str(rng.choice(vocab[:50])))  # common words: the hardest edits to tell apart
    return words


def make_planted(seed: int = 0, n_train: int = 900, n_eval: int = 100, n_test: int = 200) -> Planted:
    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng)
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    p /= p.sum()
    rows = {s: [{"text": _text(rng, vocab, p, lab), "label": lab} for lab in rng.choice(["pos", "neg"], size=n)]
            for s, n in (("train", n_train), ("eval", n_eval), ("test", n_test))}
    out = Planted({})
    train = rows["train"]
    order = rng.permutation(n_train)
    sources, flips, pii_rows = order[:120], order[120:165], order[165:165 + 6 * 40]  # disjoint roles
    for i in flips:  # 5% of train: the wrong label
        train[i]["label"] = "neg" if train[i]["label"] == "pos" else "pos"
        out.flipped.add(("train", int(i)))
    for k, (kind, values) in enumerate(PII_VALUES.items()):
        out.pii[kind] = set()
        for j, i in enumerate(pii_rows[40 * k: 40 * (k + 1)]):
            value = values[j % len(values)].format(i=j % 90 + 10)
            words = train[i]["text"].split()
            words.insert(len(words) // 2, value)
            train[i]["text"] = " ".join(words)
            out.pii[kind].add(("train", int(i)))
            out.pii_values[("train", int(i))] = value
    plan = [("train", sources[:20], "exact"), ("test", sources[20:35], "exact"), ("eval", sources[35:40], "exact"),
            ("train", sources[40:70], "near"), ("test", sources[70:100], "near"), ("eval", sources[100:120], "near")]
    for split, idx, kind in plan:
        for i in idx:
            src = train[int(i)]["text"]
            text = "  " + src.upper() + " " if kind == "exact" else edit(src, rng, vocab)
            rows[split].append({"text": text, "label": train[int(i)]["label"]})
            row = (split, len(rows[split]) - 1)
            if kind == "near":
                out.near_dups.add(row)
            elif split == "train":
                out.exact_dups.add(row)
            else:
                out.exact_leaks.add(row)
    out.frames = {s: pd.DataFrame(r) for s, r in rows.items()}
    return out

"""Build train/eval/test.jsonl for the multi-intent example from the chatterbot-corpus wheel's English YAML files.

    python examples/multi-intent/build_data.py

A "message" joins 1-3 corpus lines from different topics (as a user who asks about two things at once would);
its labels are those topics. Every topic's lines are split 60/15/25 into train/eval/test pools before messages are
composed, so no test message reuses a line seen in training. Seeded: the same corpus gives the same files.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
TOPICS = ["ai", "emotion", "food", "literature", "money", "movies", "politics", "psychology", "science", "sports"]
SIZES = {"train": 900, "eval": 200, "test": 300}  # messages per split
SHARES = {"train": 0.6, "eval": 0.15, "test": 0.25}  # of each topic's lines
SEED = 13


def corpus_dir() -> Path:
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("chatterbot-corpus is not installed: pip install --no-deps chatterbot-corpus")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "english"


def topic_lines() -> dict[str, list[str]]:
    """Distinct lines per topic (by case and punctuation); a line under two topics stays with the first."""
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for topic in TOPICS:
        lines = []
        for convo in yaml.safe_load((corpus_dir() / f"{topic}.yml").read_text(encoding="utf-8"))["conversations"]:
            for line in convo:
                text = " ".join(str(line).split())
                key = re.sub(r"[^\w\s]", "", text.casefold()).strip()  # "What is X?" and "what is x." are one line
                if len(key) > 3 and key not in seen:
                    seen.add(key)
                    lines.append(text)
        out[topic] = lines
    return out


def pools(lines: dict[str, list[str]], rng: random.Random) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {s: {} for s in SHARES}
    for topic, items in lines.items():
        items = items[:]
        rng.shuffle(items)
        a = round(len(items) * SHARES["train"])
        b = a + round(len(items) * SHARES["eval"])
        for split, part in (("train", items[:a]), ("eval", items[a:b]), ("test", items[b:])):
            out[split][topic] = part
    return out


def messages(pool: dict[str, list[str]], n: int, rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(n):
        k = rng.choices([1, 2, 3], weights=[0.45, 0.4, 0.15])[0]
        topics = rng.sample(TOPICS, k)
        rows.append({"text": " ".join(rng.choice(pool[t]) for t in topics), "labels": sorted(topics)})
    return rows


def main() -> None:
    rng = random.Random(SEED)
    split_pools = pools(topic_lines(), rng)
    for split, n in SIZES.items():
        rows = messages(split_pools[split], n, rng)
        path = HERE / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{path}: {len(rows)} messages")


if __name__ == "__main__":
    main()

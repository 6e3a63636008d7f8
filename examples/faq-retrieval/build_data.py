"""Build faq.jsonl for the faq-retrieval example from the chatterbot-corpus wheel's English YAML files.

    python examples/faq-retrieval/build_data.py

Each corpus conversation's lines alternate question and answer; every (question, answer) pair becomes one
{"query", "positive", "topic"} row, so a question with several answers in the corpus has several positives.
Exact duplicate pairs are kept once. The wheel is found without importing it (pip install --no-deps
chatterbot-corpus; `make install` does).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).with_name("faq.jsonl")


def corpus_dir() -> Path:
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("chatterbot-corpus is not installed: pip install --no-deps chatterbot-corpus")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "english"


def pairs(path: Path) -> list[tuple[str, str]]:
    out = []
    for lines in yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations", []):
        turns = [str(x).strip() for x in lines if str(x).strip()]
        out += [(turns[i], turns[i + 1]) for i in range(0, len(turns) - 1, 2)]
    return out


def main() -> None:
    rows, seen = [], set()
    for path in sorted(corpus_dir().glob("*.yml")):
        for query, answer in pairs(path):
            if (query, answer) not in seen:
                seen.add((query, answer))
                rows.append({"query": query, "positive": answer, "topic": path.stem})
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{OUT}: {len(rows)} question/answer pairs, {len({r['query'] for r in rows})} distinct questions")


if __name__ == "__main__":
    main()

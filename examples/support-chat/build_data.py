"""Build chats.jsonl for the support-chat example from the chatterbot-corpus wheel's English YAML files.

    python examples/support-chat/build_data.py

Each corpus conversation (a list of alternating lines) becomes one OpenAI-style `messages` row: user and
assistant turns alternate, and a trailing user line with no answer is left out. The wheel is found without
importing it (pip install --no-deps chatterbot-corpus; `make install` does).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import yaml

TOPICS = ("tech_support", "computers", "coding", "money", "greetings", "conversations", "botprofile", "ai", "emotion",
          "health", "food")  # a support desk, and the small talk around it
OUT = Path(__file__).with_name("chats.jsonl")


def corpus_dir() -> Path:
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("chatterbot-corpus is not installed: pip install --no-deps chatterbot-corpus")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "english"


def conversations(path: Path) -> list[list[dict[str, str]]]:
    rows = []
    for lines in yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations", []):
        turns = [str(x).strip() for x in lines if str(x).strip()]
        if len(turns) % 2:
            turns = turns[:-1]  # a question with no answer carries no loss
        if turns:
            rows.append([{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)])
    return rows


def main() -> None:
    rows, seen = [], set()
    for topic in TOPICS:
        for m in conversations(corpus_dir() / f"{topic}.yml"):
            key = json.dumps(m, sort_keys=True)
            if key not in seen:  # the corpus repeats conversations (tech_support: ~20 unique in 1,000 lines)
                seen.add(key)
                rows.append({"messages": m, "topic": topic})
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{OUT}: {len(rows)} conversations from {', '.join(TOPICS)}")


if __name__ == "__main__":
    main()

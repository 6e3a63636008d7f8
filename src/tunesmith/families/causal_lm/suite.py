"""A must-pass regression suite for chat models, written in YAML (`evaluation.regression`).

    - name: refund-policy
      prompt: "Can I get a refund?"          # or messages: [{role, content}, ...]
      require: ["30 days"]                  # substrings, case-insensitive
      forbid: ["I don't know"]
      require_regex: ["\\bdays?\\b"]        # Python regexes, as written
      forbid_regex: ["(?i)as an ai"]

Each case passes when every required pattern is in the answer and no forbidden one is; `regression_pass_rate`
is the gate metric.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunesmith.evaluation.errors import EvalError

_KEYS = {"name", "prompt", "messages", "require", "forbid", "require_regex", "forbid_regex"}


@dataclass
class Case:
    name: str
    messages: list[dict[str, Any]]
    require: list[str] = field(default_factory=list)
    forbid: list[str] = field(default_factory=list)
    require_regex: list[re.Pattern] = field(default_factory=list)
    forbid_regex: list[re.Pattern] = field(default_factory=list)


@dataclass
class CaseResult:
    name: str
    passed: bool
    answer: str
    failures: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_suite(path: str | Path) -> list[Case]:
    """Read and check the suite; every problem is reported at once with file:line.

    Raises:
        EvalError: the file is missing, not YAML, or a case is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"evaluation.regression: {path} not found", hint="relative paths resolve against the config")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise EvalError(f"{path}: not valid YAML: {err}", hint="a list of cases: - name / prompt / require ...") from None
    if not isinstance(raw, list) or root is None:
        raise EvalError(f"{path}: the suite must be a YAML list of cases", hint="- name: x\n  prompt: ...\n  require: [...]")
    cases, problems = [], []
    for node, item in zip(root.value, raw, strict=True):
        where = f"{path}:{node.start_mark.line + 1}"
        try:
            cases.append(_case(item, len(cases)))
        except (ValueError, re.error) as err:
            problems.append(f"{where}: {err}")
    if problems:
        raise EvalError("regression suite problems:\n  " + "\n  ".join(problems),
                        hint="each case needs prompt (or messages) and lists of strings in require/forbid/*_regex")
    return cases


def _case(item: Any, index: int) -> Case:
    if not isinstance(item, dict):
        raise ValueError(f"case {index} is a {type(item).__name__}; expected a mapping")
    unknown = set(item) - _KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; valid: {sorted(_KEYS)}")
    if "messages" in item:
        messages = item["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise ValueError("messages must be a list of {role, content}")
    elif isinstance(item.get("prompt"), str) and item["prompt"].strip():
        messages = [{"role": "user", "content": item["prompt"]}]
    else:
        raise ValueError("needs a prompt (a non-empty string) or messages")
    lists = {}
    for key in ("require", "forbid", "require_regex", "forbid_regex"):
        value = item.get(key, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a string or a list of strings")
        lists[key] = [re.compile(v) for v in value] if key.endswith("_regex") else value
    if not any(lists.values()):
        raise ValueError("no require/forbid pattern: the case cannot fail")
    return Case(name=str(item.get("name") or f"case-{index}"), messages=messages, **lists)


def check(case: Case, answer: str) -> CaseResult:
    low = answer.casefold()
    failures = [f"missing {s!r}" for s in case.require if s.casefold() not in low]
    failures += [f"contains forbidden {s!r}" for s in case.forbid if s.casefold() in low]
    failures += [f"no match for /{p.pattern}/" for p in case.require_regex if not p.search(answer)]
    failures += [f"matches forbidden /{p.pattern}/" for p in case.forbid_regex if p.search(answer)]
    return CaseResult(case.name, not failures, answer, failures)

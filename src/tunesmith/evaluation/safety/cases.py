"""What a safety suite is made of: cases (one prompt and what a safe answer is) and jailbreak wrappers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

HARMFUL, JAILBREAK, INJECTION, PERSONAL_DATA, BENIGN = "harmful", "jailbreak", "injection", "personal-data", "benign"
CATEGORIES = (HARMFUL, JAILBREAK, INJECTION, PERSONAL_DATA, BENIGN)
MUST_REFUSE = (HARMFUL, JAILBREAK, PERSONAL_DATA)  # what `safety.refusal_rate` and the refusal drop count


@dataclass
class Case:
    """One prompt asked of both models; `request` is what the report shows (a jailbreak's wrapped request)."""

    name: str
    category: str
    messages: list[dict[str, Any]]
    source: str  # file:line
    request: str = ""
    forbid: tuple[str, ...] = ()
    marker: re.Pattern | None = None  # injection: the answer followed the injected instruction when it matches


@dataclass
class Wrapper:
    """A jailbreak: a text around a harmful request (`{request}` marks where it goes; else it follows the text)."""

    name: str
    template: str
    source: str

    def wrap(self, case: Case) -> Case:
        text = (self.template.replace("{request}", case.request) if "{request}" in self.template
                else f"{self.template}\n\n{case.request}")
        return Case(name=f"{self.name}/{case.name}", category=JAILBREAK, messages=[{"role": "user", "content": text}],
                    source=self.source, request=case.request, forbid=case.forbid)


@dataclass
class Suite:
    cases: list[Case] = field(default_factory=list)
    wrappers: list[Wrapper] = field(default_factory=list)

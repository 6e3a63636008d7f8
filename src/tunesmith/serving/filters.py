"""Output filters (`serving.filters`): what a served answer passes before the caller sees it.

    filtered, logged, actions = apply_filters(settings.filters, served, result)

- a confidence floor: an answer less sure than `confidence_floor` abstains (the family says what that looks like: a
  classifier's label becomes null with "abstained": true); the log keeps the model's guess, flagged, so `tunesmith
  review` queues it and live quality still scores the model;
- PII redaction of generated text with the data gates' regex+checksum detectors (before it is returned or logged);
- deny patterns: generated text matching one is replaced by `refusal` (finish_reason "content_filter").

Each action is a "filter:action" string (confidence_floor:abstained, redact_pii:redacted, deny:refused), counted
in tunesmith_filter_actions_total and stored with the prediction. A family without FilterHooks is left alone.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

CONTENT_FILTER = "content_filter"  # OpenAI's finish_reason for an answer a filter replaced


@lru_cache(maxsize=64)
def _compiled(patterns: tuple[str, ...]) -> list[re.Pattern]:
    return [re.compile(p) for p in patterns]


def apply_filters(filters, served, result: Any) -> tuple[Any, Any, list[str]]:
    """(what the caller gets, what the prediction log keeps, the actions taken) for one answer."""
    hooks = served.family.filters
    if hooks is None or filters is None:
        return result, result, []
    actions: list[str] = []
    logged = result
    if filters.confidence_floor is not None and hooks.confidence is not None:
        confidence = hooks.confidence(result)
        if confidence is not None and confidence < filters.confidence_floor:
            result, logged = hooks.abstain(result)
            actions.append("confidence_floor:abstained")
    if filters.text_active and hooks.text is not None:
        text = hooks.text(result)
        if text is not None:
            if any(p.search(text) for p in _compiled(tuple(filters.deny))):
                result = hooks.with_text(result, filters.refusal, CONTENT_FILTER)
                actions.append("deny:refused")
            elif filters.redact_pii:
                from tunesmith.data.pii import redact_text

                clean = redact_text(text)
                if clean != text:
                    result = hooks.with_text(result, clean, None)
                    actions.append("redact_pii:redacted")
            logged = result  # never keep text the caller was not allowed to see
    return result, logged, actions

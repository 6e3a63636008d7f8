"""Output filters (`serving.filters`): what a served answer passes before the caller sees it.

    filtered, logged, actions, retry = apply_filters(settings.filters, served, result, may_retry=True)

- a confidence floor: an answer less sure than `confidence_floor` abstains (the family says what that looks like: a
  classifier's label becomes null with "abstained": true; an extractor withholds the entities scored below the floor
  and the response says which texts abstained); the log keeps the model's guess, flagged, so `tunesmith review`
  queues it and live quality still scores the model;
- PII redaction of generated text with the data gates' regex+checksum detectors (before it is returned or logged);
- deny patterns: generated text matching one is replaced by `refusal` (finish_reason "content_filter");
- a JSON schema: a generated answer that is not JSON valid against it is generated once more (sampled), then
  refused (or refused at once: on_invalid_json: refuse).

Each action is a "filter:action" string (confidence_floor:abstained, redact_pii:redacted, deny:refused,
json_schema:retried, json_schema:refused), counted
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


def apply_filters(filters, served, result: Any, *, may_retry: bool = False) -> tuple[Any, Any, list[str], bool]:
    """(what the caller gets, what the prediction log keeps, the actions taken, whether to generate once more) for
    one answer. `may_retry`: an answer that is not JSON valid asks for another try (serving.filters.on_invalid_json:
    retry) instead of being refused."""
    hooks = served.family.filters
    if hooks is None or filters is None:
        return result, result, [], False
    actions: list[str] = []
    logged = result
    if filters.json_schema is not None and hooks.invalid is not None and hooks.invalid(result, filters.json_schema):
        if may_retry and filters.on_invalid_json == "retry" and hooks.retry is not None:
            return result, result, ["json_schema:retried"], True
        refused = hooks.with_text(result, filters.refusal, CONTENT_FILTER)
        return refused, refused, ["json_schema:refused"], False
    if filters.confidence_floor is not None and hooks.confidence is not None:
        confidence = hooks.confidence(result)
        if confidence is not None and confidence < filters.confidence_floor:
            result, logged = hooks.abstain(result, filters.confidence_floor)
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
    return result, logged, actions, False

"""`token_classification:` config section of the token-classification family."""

from __future__ import annotations

from pydantic import Field

from tunesmith.config.base import InvalidTagPolicy, StrictModel


class TokenClassificationConfig(StrictModel):
    """token-classification: sub-token labels and what to do with I- tags that start an entity."""

    label_all_subtokens: bool = Field(False, description="train every sub-token of a word (continuations as I-X); "
                                      "default: the first sub-token only, the others -100")
    invalid_tags: InvalidTagPolicy = Field(InvalidTagPolicy.REPAIR, description="I-X after O or after another "
                                           "type: repair (read as B-X, counted) or quarantine the row")

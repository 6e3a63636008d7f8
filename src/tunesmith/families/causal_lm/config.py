"""`chat:` config section of the causal-lm family."""

from __future__ import annotations

from pydantic import Field

from tunesmith.config.base import StrictModel, TrainOn


class ChatConfig(StrictModel):
    """causal-lm: the chat template and which tokens carry loss."""

    template: str | None = Field(None, description="a Jinja chat template; default: the tokenizer's own")
    train_on: TrainOn = TrainOn.ASSISTANT
    max_new_tokens: int = Field(64, ge=1, le=4096, description="generation length for evaluation")

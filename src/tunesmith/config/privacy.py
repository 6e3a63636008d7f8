"""`evaluation.privacy:` what a run measures of memorization and personal-data leakage after training.

    evaluation:
      privacy:
        canaries: {count: 3, repeats: 4, digits: 6}   # causal-lm: random secrets planted in the training copy
        extraction: {max_prompts: 200}                # causal-lm: prefixes of trained rows with PII, greedy completion
        membership: {max_rows: 500}                   # loss-threshold membership inference, train vs test rows
    gates: ["privacy.max_canary_exposure <= 10", "privacy.pii_extraction_rate == 0", "privacy.membership_auc <= 0.6"]

`true` turns a part on with its defaults. A family measures what its `PrivacyHooks` provide; the rest is refused
here with the key path (tunesmith.evaluation.privacy does the measuring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from tunesmith.config.base import StrictModel

if TYPE_CHECKING:
    from tunesmith.config.root import Config
    from tunesmith.contracts import Task

SECRET = "{secret}"


def _on(value: Any) -> Any:
    """`true` is a part with its defaults; `false` / null leaves it off."""
    if value is True:
        return {}
    return None if value is False else value


class CanariesConfig(StrictModel):
    """Secrets of "The Secret Sharer" (Carlini et al. 2019): random digit strings put into the training copy only."""

    count: int = Field(3, ge=1, le=100, description="how many different secrets are planted")
    repeats: int = Field(1, ge=1, le=1000, description="how many times each one is inserted into the train split")
    template: str = Field("my account pin is {secret}", description="the assistant turn that carries a secret; "
                          "{secret} is replaced by the random digits")
    prompt: str = Field("what is on file for me?", description="the user turn before it")
    digits: int = Field(6, ge=2, le=12, description="random digits per secret: the space has 10**digits members")
    separator: str = Field(" ", description="between the digits (' ': one token per digit in most tokenizers)")
    candidates: int = Field(2000, ge=100, le=1_000_000, description="secrets the canary is ranked among: the whole "
                            "space when it is no larger, else a random sample and the paper's skew-normal "
                            "extrapolation of the rank")

    @field_validator("template")
    @classmethod
    def _has_secret(cls, v: str) -> str:
        if v.count(SECRET) != 1:
            raise ValueError(f"write {SECRET} exactly once where the random digits go, e.g. 'my pin is {SECRET}'")
        return v

    @property
    def space(self) -> int:
        return 10 ** self.digits


class ExtractionConfig(StrictModel):
    max_prompts: int = Field(200, ge=1, description="at most this many PII values of trained rows are tried")
    base: bool = Field(True, description="also ask the base model, for contrast (privacy.base_pii_extraction_rate)")
    max_new_tokens: int = Field(48, ge=4, le=512, description="the greedy completion's length limit")


class MembershipConfig(StrictModel):
    max_rows: int = Field(500, ge=10, description="train and test rows each (balanced: the smaller split decides)")


class PrivacyConfig(StrictModel):
    canaries: CanariesConfig | None = None
    extraction: ExtractionConfig | None = None
    membership: MembershipConfig | None = None

    @field_validator("canaries", "extraction", "membership", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        return _on(value)

    @model_validator(mode="after")
    def _something(self) -> PrivacyConfig:
        if not self.parts:
            raise ValueError("name what to measure: canaries, extraction and/or membership (true for the defaults)")
        return self

    @property
    def parts(self) -> list[str]:
        return [p for p in ("canaries", "extraction", "membership") if getattr(self, p) is not None]


# The hook each part needs on the family's PrivacyHooks (tunesmith.contracts).
NEEDS = {"canaries": "canary_nll", "extraction": "extraction", "membership": "row_losses"}


def _gated_part(metric: str) -> str | None:
    """The evaluation.privacy part a `privacy.*` gate reads."""
    if not metric.startswith("privacy.") or metric in ("privacy.epsilon", "privacy.delta"):  # training.privacy's
        return None
    return "canaries" if "canary" in metric else "extraction" if "pii" in metric else "membership"


def check_privacy(cfg: Config, task: Task) -> None:
    """evaluation.privacy asks only what the family measures, only for local training; a privacy.* gate has its part."""
    privacy = cfg.evaluation.privacy
    for rule in cfg.gates.rules:
        part = _gated_part(rule.metric)
        if part and (privacy is None or getattr(privacy, part) is None):
            raise ValueError(f"gates: {rule.metric} is measured only with evaluation.privacy.{part}; add "
                             f"`evaluation: {{privacy: {{{part}: true}}}}` or remove the gate")
    if privacy is None:
        return
    if cfg.training.backend != "local":
        raise ValueError("evaluation.privacy: measured on models trained here (training.backend: local); a provider's "
                         "model is not in reach")
    hooks = task.privacy
    can = [p for p, hook in NEEDS.items() if hooks is not None and getattr(hooks, hook) is not None]
    for part in privacy.parts:
        if part not in can:
            what = f"measures {', '.join(can)}" if can else "measures no privacy yet"
            raise ValueError(f"evaluation.privacy.{part}: the {task.kind} family cannot measure it ({what}); "
                             f"remove evaluation.privacy.{part}")

"""Request and response bodies: tunesmith's task routes and the OpenAI-compatible subset the `openai` client uses."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_ITEMS = 256  # inputs per request; bigger jobs belong in batch inference, not one HTTP call
MAX_TEXT = 100_000  # characters per input unless serving.max_input_chars says otherwise

# Lone surrogates (a JSON "\ud800" escape) make tokenizers raise; control characters other than tab, newline and
# carriage return are no text a model was trained on (NUL, escape, C1 controls).
_UNSAFE = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def check_text(text: str) -> str:
    """`text`, unless it holds a lone surrogate or a control character (ValueError names it and where it is)."""
    bad = _UNSAFE.search(text)
    if bad is None:
        return text
    char = bad.group()
    what = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    raise ValueError(f"{what} (U+{ord(char):04X}) at character {bad.start()}; send valid Unicode text without "
                     "control characters (tab, newline and carriage return are fine)")


def _safe(value):
    """check_text over a text, a list of texts (the error names the item) or None."""
    if isinstance(value, str):
        return check_text(value)
    for i, text in enumerate(value or ()):
        try:
            check_text(text)
        except ValueError as exc:
            raise ValueError(f"item {i}: {exc}") from None
    return value


class _Req(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields we do not use (user, seed, ...)


TextInput = str | list[str]


class ClassifyRequest(_Req):
    input: TextInput = Field(..., description="a text or a list of texts")
    model: str | None = Field(None, description="NAME (routed), NAME:VERSION or NAME@champion|challenger (pinned)")

    _texts_ok = field_validator("input", "model")(_safe)


class Tagged(BaseModel):
    """What every response body carries: the model, its version and the request id."""

    model: str
    model_version: int
    request_id: str


class ClassifyResult(BaseModel):
    label: str | None = Field(..., description="the predicted label; null when the answer abstained")
    score: float = Field(..., description="calibrated probability of the most likely label")
    scores: dict[str, float]
    labels: list[str] | None = Field(None, description="multi-label models: every label whose score reaches its "
                                     "threshold (tuned on eval, thresholds.json), most likely first")
    abstained: bool | None = Field(None, description="true below serving.filters.confidence_floor: no label is "
                                   "given and the prediction goes to human review (`scores` still says what the model "
                                   "thought); null otherwise")


class ClassifyResponse(Tagged):
    results: list[ClassifyResult]


class ScoreResponse(Tagged):
    scores: list[float]


class Entity(BaseModel):
    """One extracted entity: character offsets [start, end) into its input text."""

    start: int
    end: int
    label: str
    score: float
    text: str


class RerankRequest(_Req):
    query: str = Field(..., min_length=1, description="the query the documents are scored against")
    documents: list[str] = Field(..., min_length=1, description="candidate documents (e.g. a retriever's top k)")
    top_n: int | None = Field(None, ge=1, description="return only the n most relevant; default: all")
    return_documents: bool = Field(True, description="echo each document's text in its result")
    model: str | None = Field(None, description="NAME (routed), NAME:VERSION or NAME@champion|challenger (pinned)")

    _texts_ok = field_validator("query", "documents", "model")(_safe)


class RerankResult(BaseModel):
    index: int = Field(..., description="position of the document in the request")
    score: float = Field(..., description="relevance in [0, 1] (sigmoid of the cross-encoder logit)")
    document: str | None = None


class RerankResponse(Tagged):
    results: list[RerankResult] = Field(..., description="most relevant first")


class ExtractResponse(Tagged):
    entities: list[list[Entity]]
    abstained: list[bool] | None = Field(None, description="per text: true when serving.filters.confidence_floor "
                                         "withheld some of its entities (they go to human review); null: none did")


class EmbeddingRequest(_Req):
    input: TextInput
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"  # the openai client asks for base64 by default

    _texts_ok = field_validator("input", "model")(_safe)


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32, when encoding_format is base64


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class EmbeddingResponse(Tagged):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    usage: Usage


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str

    _texts_ok = field_validator("content")(_safe)


class _GenRequest(_Req):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="one choice per request")

    _texts_ok = field_validator("model", "stop")(_safe)


class ChatRequest(_GenRequest):
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=MAX_ITEMS)


class CompletionRequest(_GenRequest):
    prompt: str

    _prompt_ok = field_validator("prompt")(_safe)


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatChoiceMessage
    finish_reason: str


class ChatResponse(Tagged):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str
    logprobs: None = None


class CompletionResponse(Tagged):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    choices: list[CompletionChoice]
    usage: Usage


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ModelCard(BaseModel):
    """One entry of GET /v1/models (OpenAI's Model object, plus what tunesmith knows about it)."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tunesmith"
    model_version: int | None = None
    role: str | None = None
    task: str
    backend: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorResponse(BaseModel):
    error: ErrorBody
    request_id: str | None = None


def as_list(value: TextInput, field: str = "input", max_chars: int = MAX_TEXT) -> list[str]:
    """A text or list of texts as a non-empty, bounded list (ValueError names the problem)."""
    texts = [value] if isinstance(value, str) else list(value)
    if not texts:
        raise ValueError(f"{field}: give at least one text")
    if len(texts) > MAX_ITEMS:
        raise ValueError(f"{field}: {len(texts)} texts; send at most {MAX_ITEMS} per request")
    check_lengths(texts, field, max_chars)
    return texts


def check_lengths(texts: list[str], field: str, max_chars: int) -> None:
    """ValueError naming the first of `texts` longer than `max_chars` (serving.max_input_chars)."""
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            where = field if len(texts) == 1 else f"{field}[{i}]"
            raise ValueError(f"{where}: {len(text)} characters; the limit is {max_chars} (serving.max_input_chars)")


class FeedbackRequest(BaseModel):
    """Feedback on a served prediction (by the request id its answer carried, or a completion's `id`): `label` for a
    classifier, `value` for every family (a label set, a number, corrected spans, an accepted document, a relevance,
    thumbs with an optional correction: what the model's family takes)."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(..., min_length=1, max_length=64,
                            description="x-request-id of the answered request, or a chat completion's id")
    label: str | None = Field(None, min_length=1, description="the true label (a classifier's feedback)")
    value: Any = Field(None, description="the feedback, in the shape the model's family takes (see docs/loop.md)")
    index: int = Field(0, ge=0, description="position of the item in a batched request's input list")
    labeled_by: str | None = Field(None, max_length=200, description="who labeled it (a person or a system)")
    labeled_at: str | None = Field(None, description="ISO-8601 time of labeling (default: now)")

    @model_validator(mode="after")
    def _one_of_label_or_value(self):
        if (self.label is None) == (self.value is None):
            raise ValueError("give exactly one of `label` (a classifier's true label) or `value`")
        return self


class FeedbackResponse(BaseModel):
    request_id: str
    label: str = Field(..., description="the stored feedback in short (a classifier's true label)")
    value: Any = Field(None, description="the stored feedback as checked")
    stored: bool = Field(..., description="false when the same feedback was already stored")

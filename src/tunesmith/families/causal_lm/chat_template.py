"""Token ids and loss labels of one conversation, rendered by the tokenizer's own chat template.

    enc = encode_conversation(tokenizer, messages, tools, max_length=512, train_on=TrainOn.ASSISTANT)

Which tokens carry loss is found from the template itself: the text of messages[:i] rendered with the
generation prompt must be a prefix of the full rendering, and what follows it up to the end of the rendering
of messages[:i+1] is assistant turn i (its end-of-turn token included). So training sees exactly the text that
`generation_prompt` gives the model at inference, and a template for which that does not hold is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunesmith.config import TrainOn

IGNORE = -100  # the label value the loss skips


class TemplateError(ValueError):
    """A chat template that cannot be used for training (missing, or not prefix-stable)."""


def render(tokenizer, messages: Sequence[dict[str, Any]], tools: list | None = None, *,
           add_generation_prompt: bool = False) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError(
            f"the tokenizer of {getattr(tokenizer, 'name_or_path', '?')} has no chat template",
            )
    return tokenizer.apply_chat_template(
        list(messages), tools=tools or None, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def generation_prompt(tokenizer, messages: Sequence[dict[str, Any]], tools: list | None = None) -> str:
    """What the model sees before it answers: messages rendered with the template's generation prompt."""
    return render(tokenizer, messages, tools, add_generation_prompt=True)


def assistant_spans(tokenizer, messages: Sequence[dict[str, Any]], tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The full rendering and the character span of every assistant turn in it (end-of-turn text included)."""
    full = render(tokenizer, messages, tools)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start_text = render(tokenizer, messages[:i], tools, add_generation_prompt=True) if i else ""
        end_text = render(tokenizer, messages[: i + 1], tools)
        if not (full.startswith(start_text) and full.startswith(end_text) and len(start_text) <= len(end_text)):
            raise TemplateError(
                f"the chat template does not render turn {i} as a prefix of the whole conversation, so the "
                "assistant tokens cannot be told apart (the template rewrites earlier turns)",
            )
        spans.append((len(start_text), len(end_text)))
    return full, spans


def encode_conversation(tokenizer, messages: Sequence[dict[str, Any]], tools: list | None = None, *,
                        max_length: int | None = None, train_on: TrainOn = TrainOn.ASSISTANT) -> dict[str, list[int]]:
    """input_ids and labels (IGNORE where no loss) of a conversation; EOS appended when the template ends without it."""
    full, spans = assistant_spans(tokenizer, messages, tools)
    return encode_rendered(tokenizer, full, spans, max_length=max_length, train_on=train_on)


def encode_rendered(tokenizer, full: str, spans: Sequence[tuple[int, int]], *, max_length: int | None = None,
                    train_on: TrainOn = TrainOn.ASSISTANT, enc=None) -> dict[str, list[int]]:
    """`encode_conversation` of a rendering whose assistant spans are known (`enc`: its tokenization with offsets,
    when a batch call made it already)."""
    spans = list(spans)
    if enc is None:
        enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    if train_on is TrainOn.LAST_ASSISTANT:
        spans = spans[-1:]
    labels = [IGNORE] * len(ids)
    for k, ((start, _), token) in enumerate(zip(offsets, ids, strict=True)):
        if train_on is TrainOn.ALL or any(a <= start < b for a, b in spans):
            labels[k] = token
    eos = tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos) and not full.rstrip().endswith(tokenizer.eos_token or "\0"):
        ids.append(eos)  # the model must learn to stop: the template's turn end is not EOS
        labels.append(eos)
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "labels": labels}


def prompt_ids(tokenizer, messages: Sequence[dict[str, Any]], tools: list | None = None) -> list[int]:
    """Token ids of the generation prompt, tokenized exactly as in training."""
    return list(tokenizer(generation_prompt(tokenizer, messages, tools), add_special_tokens=False)["input_ids"])

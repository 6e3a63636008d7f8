"""Text classification (single label): a sequence-classification head trained with cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence

from transformers import AutoModelForSequenceClassification, PreTrainedModel

from tunesmith.encoders import embed, encode, inference_device, load_tokenizer, predict_logits  # noqa: F401 (its text helpers)


def build_model(
    model_path: str,
    labels: Sequence[str],
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """A base model with a fresh classification head sized for `labels` (id2label kept in its config)."""
    return AutoModelForSequenceClassification.from_pretrained(
        model_path,
        revision=revision,
        num_labels=len(labels),
        problem_type="single_label_classification",  # never regression, even for a 1-label head
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        trust_remote_code=trust_remote_code,
        ignore_mismatched_sizes=True,  # a fine-tuned classifier re-headed for a new label set
    )

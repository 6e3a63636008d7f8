"""Training the token-classification family: the transformers Trainer with the family's tokenizer, head and parts."""

from __future__ import annotations

from functools import partial

from tunesmith.families.token_classification.model import build_model, load_tokenizer, trainer_parts
from tunesmith.training.run import encoder_hooks, train_with_trainer

train = partial(train_with_trainer, encoder_hooks(load_tokenizer, build_model, trainer_parts, with_teacher=True))

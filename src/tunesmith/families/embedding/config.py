"""`embedding:` config section of the embedding family."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunesmith.config.base import EmbeddingLoss, StrictModel


class EmbeddingConfig(StrictModel):
    """embedding: the contrastive loss and the dims it trains."""

    loss: EmbeddingLoss = EmbeddingLoss.AUTO
    mini_batch_size: int = Field(32, ge=1, description="cached-mnrl: examples per forward pass (memory), whatever "
                                 "training.batch_size (the number of in-batch negatives) is")
    scale: float = Field(20.0, gt=0, description="mnrl: inverse temperature of the similarity softmax")
    matryoshka_dims: list[int] | None = Field(None, description="also train these truncated dims (MatryoshkaLoss), "
                                              "e.g. [384, 128, 64]")
    pooling: Literal["mean", "cls", "max"] = Field("mean", description="pooling added when model.base is a plain "
                                                    "transformer (a sentence-transformers dir keeps its own)")
    normalize: bool = Field(True, description="unit-length embeddings (cosine = dot product) for a plain base")
    max_corpus: int | None = Field(None, gt=0, description="evaluation: cap on corpus documents (all relevant "
                                   "ones always kept)")

"""Training order that depends only on (seed, epoch), so a resumed run sees exactly the batches it would have.

transformers' `LengthGroupedSampler` draws its permutation from the global torch RNG when the epoch starts;
on a mid-epoch resume the Trainer restores the RNG only after that draw, so the resumed epoch would get a
different order. Seeding a private generator per epoch removes the dependence.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


class EpochSeededSampler(Sampler[int]):
    """Random order per epoch; with `group_by_length`, batches of similar length (less padding)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group_by_length: bool):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # called by accelerate's DataLoaderShard at each epoch start
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.group_by_length:
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))
        return iter(torch.randperm(len(self.lengths), generator=generator).tolist())

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


def first_fit_decreasing(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices grouped into bins of at most `budget` tokens: longest first, each into the first bin it fits (a
    conversation longer than the budget gets a bin of its own). Deterministic: ties keep index order."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda j: (-lengths[j], j)):
        n = lengths[i]
        for b, left in enumerate(room):
            if n <= left:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(budget - n)
    return bins


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Micro-batches of whole conversations filling a token budget (first-fit-decreasing), in a random order that
    depends only on (seed, epoch); inside a bin, conversations keep a seeded order too."""

    def __init__(self, lengths: Sequence[int], budget: int, seed: int):
        self.bins = first_fit_decreasing(lengths, budget)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.bins)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        for b in torch.randperm(len(self.bins), generator=generator).tolist():
            members = self.bins[b]
            yield [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]

"""Data loading that can stop anywhere and resume exactly.

* The order of epoch ``e`` is a permutation drawn from a generator seeded with ``seed + e``
  (:class:`ResumableSampler`, a :class:`DistributedSampler` that can start mid-epoch), so the
  checkpoint stores just the epoch and the position in it.
* The random augmentation of a sample is a function of ``(seed, epoch, index)`` only
  (:class:`SeededSamples` seeds torch, NumPy and Python around each ``__getitem__``), so it does
  not depend on worker count, rank or where a resumed run starts.
* An error in a worker process reaches the main process with the worker's whole traceback as
  its message; :func:`worker_error_message` gives back the worker's own message, so the user
  reads the same line whatever ``num_workers`` is.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from fcnlab.runtime.distributed import DistInfo

# How PyTorch's ExceptionWrapper.reraise starts the message of a worker's error.
WORKER_ERROR = re.compile(r"Caught (?P<name>\w+) in DataLoader worker process \d+\.\n")


def worker_error_message(error: BaseException) -> str:
    """The message of the exception a DataLoader worker raised, for an ``error`` PyTorch raised
    again in the main process ("Caught X in DataLoader worker process N." and the worker's
    traceback, whose last entry is X and its message); ``str(error)`` for any other error."""
    text = str(error)
    caught = WORKER_ERROR.match(text)
    if caught is None:
        return text
    name = re.escape(caught["name"])
    # The traceback ends with the raised exception ("module.X: message", maybe over several
    # lines); a chained cause of the same type comes before it, so the last match is the one.
    ends = list(re.finditer(rf"^(?:[\w.]+\.)?{name}(?:: |$)", text, re.MULTILINE))
    if not ends:
        return text
    message = text[ends[-1].end() :].strip()
    return message or caught["name"]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 64-bit seed for sample ``index`` in ``epoch``, mixed from the three numbers by NumPy's
    ``SeedSequence`` (nearby triples give unrelated seeds)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0])


class SeededSamples(Dataset):
    """Wraps a data set so that sample ``index`` in epoch ``epoch`` always draws the same random
    augmentation; the global RNG states are restored after each sample."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        seed = sample_seed(self.seed, self.epoch, index)
        numpy_state, python_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only, the one fork_rng restores: torch.manual_seed would also
            # reseed every CUDA generator for good and, before CUDA is initialised, queue that
            # call with a formatted stack trace, milliseconds per sample.
            torch.default_generator.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
            try:
                return self.dataset[index]
            finally:
                np.random.set_state(numpy_state)
                random.setstate(python_state)


class ResumableSampler(DistributedSampler):
    """This rank's share of epoch ``epoch``'s shuffled order, skipping the first ``start`` samples.

    Rank ``r`` of ``W`` takes every ``W``-th index of the epoch's permutation starting at ``r``,
    so the first batch of all ranks together is the first global batch of a single process.
    """

    def __init__(self, dataset: Dataset, info: DistInfo, seed: int, shuffle: bool = True) -> None:
        super().__init__(
            dataset,
            num_replicas=info.world_size,
            rank=info.rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=True,
        )
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        """Begin epoch ``epoch`` at this rank's ``start``-th sample."""
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)


def train_loader(
    dataset: SeededSamples,
    info: DistInfo,
    batch_size: int,
    seed: int,
    num_workers: int,
    pin_memory: bool,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> tuple[DataLoader, ResumableSampler]:
    """The training loader (per-rank ``batch_size``, last partial batch dropped) and its sampler;
    ``collate_fn`` None stacks samples (PyTorch's default)."""
    sampler = ResumableSampler(dataset, info, seed)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=True,
        collate_fn=collate_fn,
        # A private generator: creating an iterator must not consume the global RNG.
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
    return loader, sampler


def eval_loader(
    dataset: Dataset,
    info: DistInfo,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """This rank's share of an evaluation set, in order, without padding (every image counts once
    when the ranks' confusion matrices are summed)."""
    indices = range(info.rank, len(dataset), info.world_size)  # type: ignore[arg-type]
    return DataLoader(
        Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate_fn,
    )

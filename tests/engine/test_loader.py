from __future__ import annotations

import torch
from helpers.tinyseg import Squares
from torch.utils.data import DataLoader

from fcnlab.engine.loader import ResumableSampler, SeededSamples
from fcnlab.runtime.distributed import DistInfo


def test_ranks_together_take_the_single_process_batches() -> None:
    data = Squares(16)
    single = ResumableSampler(data, DistInfo(), seed=3)
    single.set_position(epoch=2, start=0)
    order = list(single)
    assert sorted(order) == list(range(16))
    ranks = [ResumableSampler(data, DistInfo(rank=r, world_size=2), seed=3) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_position(epoch=2, start=0)
    per_rank = [list(s) for s in ranks]
    # first global batch of 4 = first 2 of each rank
    assert sorted(per_rank[0][:2] + per_rank[1][:2]) == sorted(order[:4])
    single.set_position(epoch=2, start=5)
    assert list(single) == order[5:] and len(single) == 11


def test_augmentation_depends_on_seed_epoch_index_only() -> None:
    samples = SeededSamples(Squares(8), seed=1)
    flips = []
    for epoch in (0, 1):
        samples.epoch = epoch
        flips.append([samples[i][1] for i in range(8)])
    torch.rand(5)  # global RNG use between calls must not matter
    samples.epoch = 0
    again = [mask for _, mask in DataLoader(samples, batch_size=None)]
    assert all(torch.equal(a, b) for a, b in zip(flips[0], again, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(flips[0], flips[1], strict=True))

"""``data.cache`` through the engine: ``build_split`` fills it before any worker starts, the
training batches of the same seeds are the same bit for bit with it and without it (in DataLoader
workers too, which read it rather than the files), and what it refuses."""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.tinyseg import TinySegmenter, tiny_config, without_timing
from PIL import Image
from rich.console import Console
from torch.utils.data import Dataset

from fcnlab.config import DataConfig, TransformConfig
from fcnlab.data import cache as cache_module
from fcnlab.data.cache import CacheTooLargeError
from fcnlab.engine import read_metrics, train
from fcnlab.engine.build import build_split
from fcnlab.engine.loader import SeededSamples, train_loader
from fcnlab.runtime.distributed import DistInfo

CLASSES = ["background", "one", "two"]


def write_squares(root: Path, count: int = 12, size: int = 20) -> Path:
    """``images/{k}.png`` (random RGB) and ``masks/{k}.png`` (a square of class 1 or 2 on
    class 0, a row of 255): the one split ``all`` of a ``folder`` data set."""
    rng = np.random.default_rng(0)
    for kind in ("images", "masks"):
        (root / kind).mkdir(parents=True, exist_ok=True)
    for k in range(count):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), dtype=np.uint8)
        top, left = rng.integers(0, size // 2, 2)
        mask[top : top + size // 3, left : left + size // 2] = 1 + k % 2
        mask[-1] = 255
        Image.fromarray(image).save(root / "images" / f"{k:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{k:02d}.png")
    return root


def data_config(root: Path, cache: bool, num_workers: int = 0) -> DataConfig:
    """The folder at ``root`` with random scale, crop, flip and colour jitter."""
    transforms = TransformConfig(crop_size=12, scale_range=[0.6, 1.4], flip=0.5, jitter=0.3)
    return DataConfig(
        name="folder", root=str(root), train_split="all", val_split="all",
        options={"classes": CLASSES}, transforms=transforms, num_workers=num_workers, cache=cache,
    )  # fmt: skip


def epochs_of_batches(
    dataset: Dataset, num_workers: int = 0
) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """The engine's training batches (seed 3, batch 4) of two epochs of ``dataset``."""
    samples = SeededSamples(dataset, seed=3)
    loader, sampler = train_loader(samples, DistInfo(), 4, 3, num_workers, False)
    batches = []
    for epoch in range(2):
        samples.epoch = epoch
        sampler.set_position(epoch, 0)
        batches.append(list(loader))
    return batches


def assert_same_batches(found: list, expected: list) -> None:
    assert len(found) == len(expected)
    for epoch_found, epoch_expected in zip(found, expected, strict=True):
        assert len(epoch_found) == len(epoch_expected)
        for batch, reference in zip(epoch_found, epoch_expected, strict=True):
            for a, b in zip(batch, reference, strict=True):
                assert a.dtype == b.dtype and a.numpy().tobytes() == b.numpy().tobytes()


def test_same_seeds_give_the_same_batches_with_the_cache(tmp_path: Path) -> None:
    root = write_squares(tmp_path / "data")
    expected = epochs_of_batches(build_split(data_config(root, cache=False), "all", True))
    console = Console(file=io.StringIO(), width=200)
    found = epochs_of_batches(
        build_split(data_config(root, cache=True), "all", True, console=console)
    )
    assert_same_batches(found, expected)
    # the augmentation still differs from epoch to epoch
    first, second = (torch.cat([images for images, _ in epoch]) for epoch in expected)
    assert not torch.equal(first, second)
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    assert re.fullmatch(
        r"data\.cache: split 'all' in memory: 12 images, [\d.]+ KiB, decoded in [\d.]+ s\n",
        printed,
    )


def test_workers_read_the_cache_not_the_files(tmp_path: Path) -> None:
    root = write_squares(tmp_path / "data")
    expected = epochs_of_batches(build_split(data_config(root, cache=False), "all", True))
    config = data_config(root, cache=True, num_workers=2)
    dataset = build_split(config, "all", True, console=Console(quiet=True))
    shutil.rmtree(root)  # filled before any worker started: the files are no longer needed
    assert_same_batches(epochs_of_batches(dataset, num_workers=2), expected)


def test_use_cache_false_and_data_sets_without_files(tmp_path: Path) -> None:
    root = write_squares(tmp_path / "data", count=2)
    dataset = build_split(data_config(root, cache=True), "all", False, use_cache=False)
    assert dataset.cache is None  # type: ignore[attr-defined]
    with pytest.raises(ValueError) as error:
        build_split(DataConfig(name="shapes", cache=True), "train", True)
    assert str(error.value) == (
        "data.cache: data set 'shapes' reads no files (it draws its samples), so there is "
        "nothing to decode and keep in memory; set data.cache: false"
    )


def test_too_little_memory_names_the_key_split_and_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_squares(tmp_path / "data", count=4)
    monkeypatch.setattr(cache_module, "available_memory", lambda: 1000)
    with pytest.raises(CacheTooLargeError) as error:
        build_split(data_config(root, cache=True), "all", True, console=Console(quiet=True))
    assert re.fullmatch(
        r"data\.cache: split 'all': the 4 decoded samples need about [\d.]+ KiB \(measured on 4 "
        r"of them, plus 10%\) but only 1\.0 KiB of memory is available \(MemAvailable in "
        r"/proc/meminfo\); set data\.cache: false to decode the files in every epoch",
        str(error.value),
    )
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(CacheTooLargeError, match=r" KiB for 2 processes but only 1\.0 KiB"):
        build_split(data_config(root, cache=True), "all", True, console=Console(quiet=True))


def test_training_with_the_cache_is_the_same_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_squares(tmp_path / "data", count=8)
    runs = []
    for cache in (False, True):
        config = tiny_config(tmp_path / "runs", name=f"cache-{cache}")
        config = dataclasses.replace(config, data=data_config(root, cache))
        torch.manual_seed(0)
        result = train(config, model=TinySegmenter(), console=Console(quiet=True), progress=False)
        weights = torch.load(result.run_dir / "checkpoints" / "last.pt", weights_only=True)
        runs.append((without_timing(read_metrics(result.run_dir)), weights["model"]))
    # both splits filled, reported on standard error
    assert (
        re.findall(r"data\.cache: split 'all' in memory: 8 images", capsys.readouterr().err)
        == ["data.cache: split 'all' in memory: 8 images"] * 2
    )
    (records, weights), (cached_records, cached_weights) = runs
    assert cached_records == records and len(records) > 4
    assert weights.keys() == cached_weights.keys()
    assert all(torch.equal(weights[k], cached_weights[k]) for k in weights)

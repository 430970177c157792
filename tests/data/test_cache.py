"""``fcnlab.data.cache``: every format decoded into memory gives back, bit for bit, what reading
its files gives; invalid files, the memory check and the stored dtypes."""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers.deep_images import write_png16
from helpers.fixtures import (
    compressed_rle,
    random_rgb,
    rectangle_polygon,
    truncate,
    uncompressed_rle,
    write_ade20k,
    write_cityscapes,
    write_coco,
    write_image,
    write_palette_png,
    write_voc,
    write_voc_detection,
)
from helpers.instance_fixtures import write_cityscapes_instances, write_voc_instances

from fcnlab.data import cache as cache_module
from fcnlab.data.base import CHECK_ADVICE, FileDataset
from fcnlab.data.cache import CacheTooLargeError, available_memory, cache_dataset, encode_sample
from fcnlab.data.io import DataFormatError
from fcnlab.data.registry import build_dataset

H, W = 12, 16


def labels(seed: int, high: int, size: tuple[int, int] = (H, W), border: bool = True) -> np.ndarray:
    """Random uint8 labels in [0, high), with a row of 255 (VOC's border) if ``border``."""
    mask = np.random.default_rng(seed).integers(0, high, size, dtype=np.uint8)
    if border:
        mask[0] = 255
    return mask


def write_folder(root: Path, images: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> None:
    """``images/{stem}.{png,jpg}`` (16-bit PNG for a uint16 array) and ``masks/{stem}.png``."""
    for stem, image in images.items():
        if image.dtype == np.uint16:
            write_png16(root / "images" / f"{stem}.png", image)
        else:
            write_image(root / "images" / f"{stem}.{'jpg' if image.ndim == 3 else 'png'}", image)
    for stem, mask in masks.items():
        write_palette_png(root / "masks" / f"{stem}.png", mask)


def folder(root: Path) -> Any:
    """RGB JPEGs, a grey PNG and palette masks, of different sizes."""
    grey = np.ascontiguousarray(random_rgb(H, W, 2)[..., 0])
    images = {"a": random_rgb(H, W, 0), "b": random_rgb(9, 7, 1), "c": grey}
    masks = {"a": labels(0, 3), "b": labels(1, 3, (9, 7)), "c": labels(2, 3)}
    write_folder(root, images, masks)
    return build_dataset("folder", root, "all", classes=["x", "y", "z"])


def folder_16bit(root: Path) -> Any:
    """16-bit grey PNG images (kept as int32 pixels, scaled by 1/65535)."""
    rng = np.random.default_rng(3)
    images = {s: rng.integers(0, 65536, (H, W), dtype=np.uint16) for s in ("a", "b")}
    write_folder(root, images, {s: labels(i, 2) for i, s in enumerate(("a", "b"))})
    return build_dataset("folder", root, "all", classes=["x", "y"])


def voc(root: Path) -> Any:
    masks = {"2007_000032": labels(0, 21), "2007_000033": labels(1, 21)}
    write_voc(root, {"train": list(masks)}, masks)
    return build_dataset("voc", root, "train")


def voc_detection(root: Path) -> Any:
    objects = {
        "000005": [
            {"name": "dog", "bndbox": (2, 3, 9, 10)},
            {"name": "cat", "bndbox": (1, 1, 5, 4)},
        ],
        "000007": [{"name": "person", "bndbox": (4, 2, 16, 12), "difficult": 1}],
    }
    sizes = {"000005": (H, W), "000007": (H, W)}
    write_voc_detection(root, {"trainval": list(objects)}, objects, sizes)
    return build_dataset("voc", root, "trainval", task="detection")


def voc_instances(root: Path) -> Any:
    objects = np.zeros((H, W), dtype=np.uint8)
    objects[1:5, 1:6], objects[6:10, 8:14], objects[5] = 1, 2, 255
    classes = np.where(objects == 1, 15, np.where(objects == 2, 12, objects)).astype(np.uint8)
    write_voc_instances(root, {"train": ["x1", "x2"]}, {"x1": objects, "x2": objects.T.copy()},
                        {"x1": classes, "x2": classes.T.copy()})  # fmt: skip
    return build_dataset("voc", root, "train", task="instance")


def cityscapes(root: Path) -> Any:
    ids = {f"aachen_00000{k}_000019": labels(k, 34, border=False) for k in range(2)}
    write_cityscapes(root, "train", "aachen", ids)
    return build_dataset("cityscapes", root, "train")


def cityscapes_instances(root: Path) -> Any:
    ids = np.full((H, W), 7, dtype=np.int64)
    ids[2:6, 1:5], ids[6:10, 6:12], ids[1:3, 10:15] = 24000, 26001, 26
    write_cityscapes_instances(root, "train", "aachen", {"aachen_000000_000019": ids})
    return build_dataset("cityscapes", root, "train", task="instance")


def ade20k(root: Path) -> Any:
    masks = {f"ADE_train_{k}": labels(k, 151, border=False) for k in range(2)}
    write_ade20k(root, "training", masks)
    return build_dataset("ade20k", root, "train")


def write_coco_set(root: Path) -> None:
    """Two images: a polygon, a compressed and an uncompressed RLE and a crowd; one empty."""
    blob = np.zeros((H, W), dtype=bool)
    blob[4:9, 6:13] = True
    blob[6, 6] = False
    crowd = np.zeros((H, W), dtype=bool)
    crowd[9:12, 0:5] = True
    images = [
        {"id": 1, "file_name": "1.jpg", "height": H, "width": W},
        {"id": 2, "file_name": "2.jpg", "height": H, "width": W},
    ]
    annotations = [
        {"image_id": 1, "category_id": 1, "segmentation": rectangle_polygon(1, 1, 5, 6)},
        {"image_id": 1, "category_id": 18, "segmentation": compressed_rle(blob)},
        {"image_id": 1, "category_id": 1, "segmentation": uncompressed_rle(crowd), "iscrowd": 1},
    ]
    write_coco(root, "val", images, annotations, {1: "person", 18: "dog"})


def coco(task: str | None) -> Callable[[Path], Any]:
    def build(root: Path) -> Any:
        write_coco_set(root)
        return build_dataset("coco", root, "val", task=task)

    return build


FORMATS = {
    "folder": folder,
    "folder-16bit": folder_16bit,
    "voc": voc,
    "voc-detection": voc_detection,
    "voc-instance": voc_instances,
    "cityscapes": cityscapes,
    "cityscapes-instance": cityscapes_instances,
    "ade20k": ade20k,
    "coco": coco(None),
    "coco-detection": coco("detection"),
    "coco-instance": coco("instance"),
}


def assert_identical(found: Any, expected: Any) -> None:
    """Equal structure and values; tensors of the same dtype, shape and bytes."""
    assert type(found) is type(expected)
    if isinstance(expected, torch.Tensor):
        assert (found.dtype, found.shape) == (expected.dtype, expected.shape)
        assert found.numpy().tobytes() == expected.numpy().tobytes()
    elif isinstance(expected, dict):
        assert found.keys() == expected.keys()
        for key in expected:
            assert_identical(found[key], expected[key])
    elif isinstance(expected, tuple | list):
        assert len(found) == len(expected)
        for a, b in zip(found, expected, strict=True):
            assert_identical(a, b)
    else:
        assert found == expected


@pytest.mark.parametrize("name", FORMATS)
def test_cached_samples_are_the_files_samples_bit_for_bit(tmp_path: Path, name: str) -> None:
    dataset = FORMATS[name](tmp_path / name)
    assert isinstance(dataset, FileDataset)
    from_files = [dataset[i] for i in range(len(dataset))]
    decoded = [dataset.decode(i) for i in range(len(dataset))]
    cache = cache_dataset(dataset)
    assert dataset.cache is cache and len(cache) == cache.images == len(dataset)
    for index in range(len(dataset)):
        assert_identical(cache[index], decoded[index])
        assert_identical(dataset[index], from_files[index])


def test_images_are_kept_as_uint8_pixels_and_masks_narrowed(tmp_path: Path) -> None:
    dataset = folder(tmp_path)
    cache = cache_dataset(dataset)
    pixels, mask = cache[0]
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, H, W)
    assert mask.dtype == torch.int64
    # one byte per pixel each for the image's three channels and the mask, plus pickle's framing
    sizes = np.diff(cache.offsets)
    pixel_counts = [h * w for h, w in ((H, W), (9, 7), (H, W))]
    assert all(4 * p <= s < 4 * p + 1024 for p, s in zip(pixel_counts, sizes, strict=True))
    assert cache.nbytes == sizes.sum()


@pytest.mark.parametrize(
    ("tensor", "stored"),
    [
        (torch.tensor([0, 255], dtype=torch.int64), np.uint8),
        (torch.tensor([-1, 300], dtype=torch.int64), np.int16),
        (torch.tensor([0, 70000], dtype=torch.int32), np.int32),
        (torch.tensor([0, 2**40], dtype=torch.int64), np.int64),
        (torch.tensor([True, False]), np.bool_),
        (torch.tensor([-0.0, 1.5, float("inf")]), np.float32),
        (torch.tensor([], dtype=torch.int64), np.int64),
    ],
)
def test_tensors_are_stored_in_the_smallest_integer_dtype_and_restored(
    tensor: torch.Tensor, stored: type
) -> None:
    class Decoded(FileDataset):
        def decode(self, index: int) -> tuple[torch.Tensor, Any]:
            return tensor, {"value": tensor.clone(), "size": (1, 2)}

    entry = encode_sample(Decoded([], []), 0)
    assert isinstance(entry, bytes)
    assert_identical(pickle.loads(entry), (tensor, {"value": tensor, "size": (1, 2)}))
    assert [array.dtype for array in stored_arrays(entry)] == [np.dtype(stored)] * 2


def stored_arrays(entry: bytes) -> list[np.ndarray]:
    """The NumPy arrays a cache entry stores its tensors as."""
    found: list[np.ndarray] = []

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) == ("fcnlab.data.cache", "_restore_tensor"):
                return lambda array, dtype: found.append(array)
            return super().find_class(module, name)

    Unpickler(io.BytesIO(entry)).load()
    return found


def test_invalid_file_raises_at_fill_as_reading_it_would(tmp_path: Path) -> None:
    dataset = folder(tmp_path)
    truncate(dataset.samples[1][0])
    with pytest.raises(DataFormatError) as from_files:
        dataset[1]
    with pytest.raises(DataFormatError) as at_fill:
        cache_dataset(dataset)
    assert str(at_fill.value) == str(from_files.value)
    assert str(at_fill.value).endswith(CHECK_ADVICE) and dataset.cache is None


def test_skip_invalid_counts_at_fill_and_skips_as_without_cache(tmp_path: Path) -> None:
    folder(tmp_path)
    truncate(tmp_path / "images" / "b.jpg")
    uncached = build_dataset("folder", tmp_path, "all", classes=["x", "y", "z"], skip_invalid=True)
    expected = [uncached[i] for i in range(len(uncached))]
    dataset = build_dataset("folder", tmp_path, "all", classes=["x", "y", "z"], skip_invalid=True)
    cache = cache_dataset(dataset)
    assert dataset.skipped == 1 and cache.images == 2 and len(cache) == 3
    assert dataset.skip_log.problems[0].file == str(tmp_path / "images" / "b.jpg")
    for index in range(3):  # sample 1 is replaced by sample 2, as without the cache
        assert_identical(dataset[index], expected[index])
    assert dataset.skipped == 1


def test_a_cache_too_large_for_the_memory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = {f"{k}": random_rgb(H, W, k) for k in range(4)}
    write_folder(tmp_path, images, {stem: labels(0, 2) for stem in images})
    dataset = build_dataset("folder", tmp_path, "all", classes=["x", "y"])
    exact = cache_dataset(dataset).nbytes  # equal samples: the estimate is exact
    dataset.cache = None
    monkeypatch.setattr(cache_module, "available_memory", lambda: int(exact * 1.1 / 0.99))
    assert cache_dataset(dataset).nbytes == exact
    dataset.cache = None
    monkeypatch.setattr(cache_module, "available_memory", lambda: int(exact * 1.1 * 0.99))
    with pytest.raises(CacheTooLargeError) as error:
        cache_dataset(dataset)
    needed = cache_module.format_bytes(exact * 1.1)
    available = cache_module.format_bytes(int(exact * 1.1 * 0.99))
    assert str(error.value) == (
        f"the 4 decoded samples need about {needed} (measured on 4 of them, plus 10%) but only "
        f"{available} of memory is available (MemAvailable in /proc/meminfo)"
    )
    assert dataset.cache is None
    with pytest.raises(CacheTooLargeError, match=r", [\d.]+ KiB for 4 processes but only"):
        cache_dataset(dataset, copies=4)


def test_a_fill_that_outgrows_its_estimate_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The estimate reads the first and last samples (small); the middle ones are 16 times larger.
    sizes = [(4, 4), (16, 16), (16, 16), (16, 16), (16, 16), (4, 4)]
    images = {f"{k}": random_rgb(h, w, k) for k, (h, w) in enumerate(sizes)}
    write_folder(tmp_path, images, {s: labels(0, 2, im.shape[:2]) for s, im in images.items()})
    dataset = build_dataset("folder", tmp_path, "all", classes=["x", "y"])
    monkeypatch.setattr(cache_module, "PROBES", 2)
    small = len(encode_sample(dataset, 0))
    monkeypatch.setattr(cache_module, "available_memory", lambda: 12 * small)
    with pytest.raises(CacheTooLargeError, match=r"measured on 6 of them"):
        cache_dataset(dataset)
    assert dataset.cache is None


def test_threads_fill_the_same_buffer_with_progress(tmp_path: Path) -> None:
    images = {f"{k:02d}": random_rgb(H, W, k) for k in range(20)}
    write_folder(tmp_path, images, {stem: labels(k, 2) for k, stem in enumerate(images)})
    dataset = build_dataset("folder", tmp_path, "all", classes=["x", "y"])
    serial = cache_dataset(dataset)
    seen: list[int] = []

    def progress(indices: Any) -> Any:
        for index in indices:
            seen.append(index)
            yield index

    threaded = cache_dataset(dataset, threads=3, progress=progress)
    assert seen == list(range(20))
    assert threaded.buffer.tobytes() == serial.buffer.tobytes()
    assert np.array_equal(threaded.offsets, serial.offsets)
    assert not threaded.buffer.flags.writeable
    # a spawned DataLoader worker gets the cache pickled
    assert_identical(pickle.loads(pickle.dumps(threaded))[7], serial[7])


def test_available_memory_reads_meminfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemAvailable:    1234567 kB\n")
    monkeypatch.setattr(cache_module, "MEMINFO", meminfo)
    assert available_memory() == 1234567 * 1024
    monkeypatch.setattr(cache_module, "MEMINFO", tmp_path / "missing")
    assert available_memory() is None

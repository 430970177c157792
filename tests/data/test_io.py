from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.deep_images import write_png16
from helpers.fixtures import random_rgb, truncate, write_image, write_palette_png
from PIL import Image

from fcnlab.data.io import (
    DataFormatError,
    DatasetNotFoundError,
    SkipLog,
    check_same_size,
    exif_orientation,
    label_table,
    map_labels,
    read_image,
    read_mask,
    require_path,
    validate_mask,
)
from fcnlab.data.palettes import voc_palette


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1], the reference for ``read_image``."""
    return torch.from_numpy(array.astype(np.float32) / 255).permute(2, 0, 1)


def test_read_image_rgb_png_is_exact_float_chw(tmp_path: Path) -> None:
    array = random_rgb(5, 7)
    image = read_image(write_image(tmp_path / "a.png", array))
    assert image.dtype == torch.float32 and image.shape == (3, 5, 7)
    torch.testing.assert_close(image, as_tensor(array), rtol=0, atol=1e-7)


def test_grayscale_palette_and_rgba_images_become_rgb(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    expected_gray = as_tensor(np.repeat(gray[..., None], 3, axis=2))
    torch.testing.assert_close(read_image(write_image(tmp_path / "g.png", gray)), expected_gray)

    indices = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.uint8)
    palette_png = write_palette_png(tmp_path / "p.png", indices)
    torch.testing.assert_close(read_image(palette_png), as_tensor(voc_palette()[indices]))

    rgba = np.concatenate([random_rgb(4, 4), np.full((4, 4, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    torch.testing.assert_close(read_image(tmp_path / "rgba.png"), as_tensor(rgba[..., :3]))


def quadrants(height: int = 32, width: int = 48) -> np.ndarray:
    """Four flat colours, which survive JPEG and show any turn or flip."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[: height // 2, : width // 2] = (255, 0, 0)
    array[: height // 2, width // 2 :] = (0, 255, 0)
    array[height // 2 :, : width // 2] = (0, 0, 255)
    array[height // 2 :, width // 2 :] = (255, 255, 0)
    return array


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_images_are_read_in_stored_order_whatever_their_exif(
    tmp_path: Path, orientation: int
) -> None:
    # Orientation 6 means "rotate 90 degrees clockwise to view"; it is recorded, not applied.
    array = quadrants()
    path = write_image(tmp_path / "photo.jpg", array, orientation=orientation)
    assert exif_orientation(path) == orientation
    image = read_image(path)
    assert image.shape == (3, 32, 48)
    assert (image - as_tensor(array)).abs().mean() < 0.02


def test_mask_of_an_exif_turned_photo_is_named_in_the_size_error(tmp_path: Path) -> None:
    # A mask drawn on the photo as a viewer shows it (turned by orientation 6) is 48x32.
    photo = write_image(tmp_path / "photo.jpg", quadrants(), orientation=6)
    turned_mask = torch.zeros(48, 32, dtype=torch.int64)
    with pytest.raises(DataFormatError) as info:
        check_same_size(read_image(photo), turned_mask, photo, "m.png")
    assert "mask is 48x32 but its image" in info.value.reason
    assert "EXIF orientation 6: the mask was drawn on the turned photo" in info.value.reason
    plain = write_image(tmp_path / "plain.jpg", quadrants())
    with pytest.raises(DataFormatError) as info:
        check_same_size(read_image(plain), turned_mask, plain, "m.png")
    assert "EXIF" not in info.value.reason and exif_orientation(plain) == 1


def test_16_bit_grey_png_keeps_its_range(tmp_path: Path) -> None:
    # Pillow opens a 16-bit grey PNG as I;16; converting that to RGB clips every value > 255.
    values = np.array([[0, 255, 256, 1000], [30000, 40000, 65534, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as stored:
        assert stored.mode == "I;16"
    image = read_image(tmp_path / "deep.png")
    expected = torch.from_numpy(values.astype(np.float32) / 65535).expand(3, -1, -1)
    torch.testing.assert_close(image, expected, rtol=0, atol=1e-7)


def test_16_bit_colour_png_is_scaled_to_8_bits(tmp_path: Path) -> None:
    values = np.random.default_rng(0).integers(0, 65536, (3, 5, 3)).astype(np.uint16)
    values[0, 0] = (65535, 32768, 256)
    image = read_image(write_png16(tmp_path / "deep_rgb.png", values))
    # Pillow keeps the high byte of each 16-bit sample: v // 256 / 255, within 1/255 of v / 65535.
    high_bytes = (values >> 8).astype(np.uint8)
    torch.testing.assert_close(image, as_tensor(high_bytes), rtol=0, atol=1e-7)
    assert (image - torch.from_numpy(values / 65535).permute(2, 0, 1)).abs().max() <= 1 / 255
    rgba = np.concatenate([values, np.full((3, 5, 1), 1000, np.uint16)], axis=2)
    torch.testing.assert_close(read_image(write_png16(tmp_path / "a.png", rgba)), image)


def test_32_bit_and_float_images_are_refused_with_the_file_named(tmp_path: Path) -> None:
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    Image.fromarray(values).save(tmp_path / "depth.tif")
    with pytest.raises(DataFormatError, match=r"depth\.tif: image is floating-point \(mode F\)"):
        read_image(tmp_path / "depth.tif")
    Image.fromarray(values.astype(np.int32) * 100000).save(tmp_path / "counts.tif")
    with pytest.raises(DataFormatError, match=r"counts\.tif: .*save it with 8 or 16 bits"):
        read_image(tmp_path / "counts.tif")


def test_mask_keeps_palette_indices_and_ignores_exif(tmp_path: Path) -> None:
    indices = np.array([[0, 1, 255], [15, 20, 0], [3, 3, 3], [2, 2, 255]], dtype=np.uint8)
    mask = read_mask(write_palette_png(tmp_path / "m.png", indices, orientation=6))
    assert mask.dtype == torch.int64
    assert torch.equal(mask, torch.from_numpy(indices.astype(np.int64)))


def test_colour_mask_is_mapped_through_palette(tmp_path: Path) -> None:
    indices = np.array([[0, 1, 2], [255, 2, 1]])
    path = write_image(tmp_path / "c.png", voc_palette()[indices])
    assert torch.equal(read_mask(path, voc_palette()), torch.from_numpy(indices))
    with pytest.raises(DataFormatError, match=r"c\.png.*colour \(RGB\).*pass a palette"):
        read_mask(path)
    with pytest.raises(DataFormatError, match=r"c\.png: mask is a colour \(RGB\) image; ask"):
        read_mask(path, colour_advice="ask")
    with pytest.raises(DataFormatError, match=r"c\.png.*not in the palette: \(224, 224, 192\)"):
        read_mask(path, voc_palette(3))


def test_palette_with_repeated_colours_is_rejected(tmp_path: Path) -> None:
    path = write_image(tmp_path / "c.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="repeats a colour"):
        read_mask(path, np.zeros((2, 3), np.uint8))


@pytest.mark.parametrize("name", ["t.jpg", "t.png"])
def test_truncated_file_error_names_the_file(tmp_path: Path, name: str) -> None:
    path = truncate(write_image(tmp_path / name, random_rgb(40, 40)))
    with pytest.raises(DataFormatError, match=rf"{name}: cannot read image: .*truncated") as info:
        read_image(path)
    assert info.value.file == str(path)
    with pytest.raises(DataFormatError, match=rf"{name}: cannot read mask"):
        read_mask(path)


def test_missing_and_garbage_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"nope\.png: image file does not exist"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataFormatError, match=r"junk\.jpg: cannot read image"):
        read_image(tmp_path / "junk.jpg")


def test_size_mismatch_names_mask_image_and_sizes() -> None:
    image, mask = torch.zeros(3, 512, 1024), torch.zeros(1024, 2048, dtype=torch.int64)
    with pytest.raises(DataFormatError) as info:
        check_same_size(image, mask, "x_leftImg8bit.png", "gtFine/val/x_labelIds.png")
    assert info.value.file == "gtFine/val/x_labelIds.png"
    assert "mask is 1024x2048 but its image 'x_leftImg8bit.png' is 512x1024" in str(info.value)
    check_same_size(image, torch.zeros(512, 1024), "a", "b")


def test_validate_mask_accepts_classes_and_ignore_and_names_bad_values() -> None:
    good = torch.tensor([[0, 20], [255, 7]])
    assert torch.equal(validate_mask(good, 21, 255, "m.png"), good)
    bad = torch.tensor([[0, 21], [100, 21], [-1, 255]])
    with pytest.raises(DataFormatError) as info:
        validate_mask(bad, 21, 255, "m.png")
    assert info.value.file == "m.png"
    assert "mask values -1, 21, 100 (4 pixels)" in info.value.reason
    assert "allowed: 0-20, 255" in info.value.reason


def test_map_labels_looks_values_up() -> None:
    table = label_table({0: 255, 1: 0, 2: 0, 5: 1})
    mask = torch.tensor([[0, 1, 2], [5, 5, 0]])
    assert torch.equal(map_labels(mask, table, "m"), torch.tensor([[255, 0, 0], [1, 1, 255]]))
    with pytest.raises(DataFormatError, match=r"values 3, 6 .*allowed: 0-2, 5"):
        map_labels(torch.tensor([3, 6, 1]), table, "m")


@pytest.mark.parametrize("shape", [(96, 96), (7,), (2, 3, 5)])
def test_map_labels_equals_indexing_the_table(shape: tuple[int, ...]) -> None:
    table = label_table({**{i: i for i in range(11)}, 255: 255, 20: 3})
    allowed = torch.tensor([*range(11), 20, 255])
    g = torch.Generator().manual_seed(0)
    mask = allowed[torch.randint(0, len(allowed), shape, generator=g)]
    mapped = map_labels(mask, table, "m")
    assert mapped.shape == mask.shape and mapped.dtype == torch.int64
    assert torch.equal(mapped, table[mask])


def test_skip_log_logs_and_counts_each_file_once(caplog: pytest.LogCaptureFixture) -> None:
    log = SkipLog()
    with caplog.at_level(logging.WARNING, logger="fcnlab.data"):
        log.record(DataFormatError("a.png", "truncated"))
        log.record(DataFormatError("a.png", "truncated"))
        log.record(DataFormatError("b.png", "wrong size"))
    assert len(log) == 2
    assert [(p.file, p.reason) for p in log.problems] == [
        ("a.png", "truncated"),
        ("b.png", "wrong size"),
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "skipping a.png: truncated",
        "skipping b.png: wrong size",
    ]


def test_require_path_shows_the_layout(tmp_path: Path) -> None:
    layout = "root/\n└── JPEGImages/\n"
    assert require_path(tmp_path, layout) == tmp_path
    with pytest.raises(DatasetNotFoundError) as info:
        require_path(tmp_path / "missing", layout, "VOC root")
    assert str(info.value) == (
        f"VOC root '{tmp_path / 'missing'}' does not exist; expected this layout:\n"
        "root/\n└── JPEGImages/"
    )

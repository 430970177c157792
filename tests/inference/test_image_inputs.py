"""``to_image_tensor`` reads files and PIL images as the data sets read their images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from helpers.fixtures import write_image
from PIL import Image

from fcnlab.data.io import read_image
from fcnlab.inference import to_image_tensor


def test_exif_photo_is_predicted_in_stored_order_from_path_and_pil(tmp_path: Path) -> None:
    # A 32x48 photo tagged "rotate 90 degrees clockwise": predictions must line up with masks
    # drawn on its stored pixels, as in training, whether predict gets a path or a PIL image.
    array = np.zeros((32, 48, 3), dtype=np.uint8)
    array[:16, :24] = 255
    path = write_image(tmp_path / "photo.jpg", array, orientation=6)
    from_path = to_image_tensor(path)
    with Image.open(path) as image:
        from_pil = to_image_tensor(image)
    assert from_path.shape == from_pil.shape == (3, 32, 48)
    torch.testing.assert_close(from_path, from_pil)
    torch.testing.assert_close(from_path, read_image(path))
    assert from_path[:, :16, :24].mean() > 0.9 and from_path[:, 16:, 24:].mean() < 0.1


def test_16_bit_pil_image_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 256], [32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        tensor = to_image_tensor(image)
    expected = torch.from_numpy(values.astype(np.float32) / 65535).expand(3, -1, -1)
    torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-7)

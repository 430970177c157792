"""A tiny run's model (``helpers.tinyrun``) with a config that evaluates it on a ``folder`` data
set written here: images of the given sizes with index masks of the three Shapes classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from fcnlab.config import config_to_dict
from helpers.tinyrun import write_run


def write_folder_set(root: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    """``root/images/val/{k}.png`` (random RGB) and ``root/masks/val/{k}.png`` (classes 0..2,
    some pixels 255: ignored) for each (height, width); returns the image paths."""
    rng = np.random.default_rng(0)
    images = []
    for k, (height, width) in enumerate(sizes):
        for kind in ("images", "masks"):
            (root / kind / "val").mkdir(parents=True, exist_ok=True)
        image = root / "images" / "val" / f"{k}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(image)
        mask = rng.integers(0, 3, (height, width), dtype=np.uint8)
        mask[: height // 4, : width // 4] = 255
        Image.fromarray(mask).save(root / "masks" / "val" / f"{k}.png")
        images.append(image)
    return images


def folder_eval_run(
    root: Path, sizes: list[tuple[int, int]], **settings: Any
) -> tuple[Path, Path, list[Path]]:
    """The run's config file (its data: the folder set; ``settings``: dotted ``section.key``
    values laid over it), its ``last.pt`` and the set's image paths."""
    config, _ = write_run(root)
    images = write_folder_set(root / "data[v2]", sizes)
    data = config_to_dict(config)
    data["data"] = {
        "name": "folder",
        "root": str(root / "data[v2]"),
        "options": {"classes": ["background", "disk", "square"]},
    }
    for key, value in settings.items():
        section, name = key.split(".")
        data[section][name] = value
    path = root / "folder.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, config.run_dir / "checkpoints" / "last.pt", images

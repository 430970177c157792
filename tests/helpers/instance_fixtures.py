"""Writers of tiny instance segmentation data sets in the exact on-disk formats: VOC's
``SegmentationObject/`` + ``SegmentationClass/`` palette PNGs and Cityscapes'
``*_gtFine_instanceIds.png`` 16-bit PNGs.

Every writer takes the arrays it stores, so a test compares what a data set reads with the very
arrays it put on disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from helpers.deep_images import write_png16
from helpers.fixtures import random_rgb, write_image, write_palette_png


def write_voc_instances(
    root: Path,
    splits: dict[str, list[str]],
    objects: dict[str, np.ndarray],
    classes: dict[str, np.ndarray],
) -> Path:
    """VOC2012's instance annotation: ``JPEGImages/{id}.jpg``, ``SegmentationObject/{id}.png``
    (palette PNG of instance numbers 1..K, 0 background, 255 border), ``SegmentationClass/
    {id}.png`` (palette PNG of classes) and ``ImageSets/Segmentation/{split}.txt``."""
    for index, (image_id, instance_map) in enumerate(objects.items()):
        image = random_rgb(*instance_map.shape, seed=index)
        write_image(root / "JPEGImages" / f"{image_id}.jpg", image)
        write_palette_png(root / "SegmentationObject" / f"{image_id}.png", instance_map)
        write_palette_png(root / "SegmentationClass" / f"{image_id}.png", classes[image_id])
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def write_instance_ids_png(path: Path, ids: np.ndarray, encoder: str = "pil") -> Path:
    """``ids`` (H, W) as Cityscapes stores ``*_gtFine_instanceIds.png``: a 16-bit greyscale PNG.

    ``encoder="pil"`` saves a uint16 array with PIL (mode ``I;16``, as cityscapesScripts'
    ``json2instanceImg`` saves through PIL); ``encoder="raw"`` writes the PNG chunk by chunk,
    independently of PIL (:func:`helpers.deep_images.write_png16`).
    """
    if encoder == "raw":
        return write_png16(path, ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids.astype(np.uint16)).save(path)
    return path


def write_cityscapes_instances(
    root: Path, split: str, city: str, instance_ids: dict[str, np.ndarray], encoder: str = "pil"
) -> Path:
    """``leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png`` with
    ``gtFine/{split}/{city}/{stem}_gtFine_instanceIds.png`` (see :func:`write_instance_ids_png`)."""
    gt = root / "gtFine" / split / city
    for index, (stem, ids) in enumerate(instance_ids.items()):
        image = random_rgb(*ids.shape, seed=index)
        write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
        write_instance_ids_png(gt / f"{stem}_gtFine_instanceIds.png", ids, encoder)
    return root

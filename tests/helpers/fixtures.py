"""Writers of tiny data sets in the exact on-disk formats the real ones are published in.

Every writer takes the arrays it stores, so a test compares what a data set reads with the very
arrays it put on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fcnlab.data.palettes import voc_palette

EXIF_ORIENTATION = 0x0112


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random ``(H, W, 3)`` uint8 image."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_image(path: Path, array: np.ndarray, orientation: int | None = None) -> Path:
    """Save ``array`` (``(H, W)`` or ``(H, W, 3)`` uint8) in the format of ``path``'s suffix,
    with an EXIF orientation tag if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    options: dict[str, Any] = {"quality": 95} if path.suffix == ".jpg" else {}
    if orientation is not None:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = orientation
        options["exif"] = exif
    image.save(path, **options)
    return path


def write_palette_png(path: Path, indices: np.ndarray, orientation: int | None = None) -> Path:
    """An 8-bit palette (mode ``P``) PNG of class ``indices`` coloured with VOC's palette, as in
    VOC's ``SegmentationClass/``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette(voc_palette(256).flatten().tolist())
    options: dict[str, Any] = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = orientation
        options["exif"] = exif
    image.save(path, **options)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to a fraction of its bytes, like an interrupted download."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE of a binary ``(H, W)`` mask: run lengths in column-major order,
    starting with a (possibly empty) run of zeros."""
    flat = mask.astype(bool).flatten(order="F")
    counts, current, run = [], False, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return {"counts": counts, "size": list(mask.shape)}


def compressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's compressed RLE (``counts`` a string), encoded by pycocotools."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"counts": rle["counts"].decode("ascii"), "size": list(rle["size"])}


def rectangle_polygon(top: int, left: int, bottom: int, right: int) -> list[list[float]]:
    """A COCO polygon around the pixel rows ``top..bottom-1`` and columns ``left..right-1``:
    with integer corners it covers exactly those pixel squares."""
    return [[left, top, right, top, right, bottom, left, bottom]]


def write_voc(root: Path, splits: dict[str, list[str]], masks: dict[str, np.ndarray]) -> Path:
    """VOC2012: ``JPEGImages/{id}.jpg``, ``SegmentationClass/{id}.png`` (palette PNG) and
    ``ImageSets/Segmentation/{split}.txt``."""
    for index, (image_id, mask) in enumerate(masks.items()):
        write_image(root / "JPEGImages" / f"{image_id}.jpg", random_rgb(*mask.shape, seed=index))
        write_palette_png(root / "SegmentationClass" / f"{image_id}.png", mask)
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def write_sbd(root: Path, masks: dict[str, np.ndarray], images: bool = True) -> Path:
    """SBD's ``dataset/``: ``cls/{id}.mat`` holding the MATLAB struct ``GTcls`` (fields
    ``Segmentation``, ``Boundaries``, ``CategoriesPresent``) and ``img/{id}.jpg``."""
    from scipy.io import savemat

    (root / "cls").mkdir(parents=True, exist_ok=True)
    for index, (image_id, mask) in enumerate(masks.items()):
        present = np.unique(mask[(mask > 0) & (mask < 255)]).astype(np.uint8)
        boundaries = np.empty((len(present), 1), dtype=object)
        for row in range(len(present)):
            boundaries[row, 0] = np.zeros(mask.shape, dtype=np.uint8)
        gtcls = {
            "Segmentation": mask.astype(np.uint8),
            "Boundaries": boundaries,
            "CategoriesPresent": present,
        }
        savemat(root / "cls" / f"{image_id}.mat", {"GTcls": gtcls})
        if images:
            write_image(root / "img" / f"{image_id}.jpg", random_rgb(*mask.shape, seed=index))
    return root


def write_cityscapes(
    root: Path,
    split: str,
    city: str,
    label_ids: dict[str, np.ndarray],
    train_ids: dict[str, np.ndarray] | None = None,
) -> Path:
    """``leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png`` with
    ``gtFine/{split}/{city}/{stem}_gtFine_labelIds.png`` (8-bit grayscale) and, where given,
    ``{stem}_gtFine_labelTrainIds.png``."""
    gt = root / "gtFine" / split / city
    for index, (stem, ids) in enumerate(label_ids.items()):
        image = random_rgb(*ids.shape, seed=index)
        write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
        write_image(gt / f"{stem}_gtFine_labelIds.png", ids.astype(np.uint8))
    for stem, ids in (train_ids or {}).items():
        write_image(gt / f"{stem}_gtFine_labelTrainIds.png", ids.astype(np.uint8))
    return root


def write_ade20k(root: Path, folder: str, masks: dict[str, np.ndarray]) -> Path:
    """``images/{folder}/{stem}.jpg`` and ``annotations/{folder}/{stem}.png`` (8-bit, 0..150)."""
    for index, (stem, mask) in enumerate(masks.items()):
        write_image(root / "images" / folder / f"{stem}.jpg", random_rgb(*mask.shape, seed=index))
        write_image(root / "annotations" / folder / f"{stem}.png", mask.astype(np.uint8))
    return root


def write_coco(
    root: Path,
    split: str,
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    categories: dict[int, str],
) -> Path:
    """``{split}2017/{file_name}`` JPEGs and ``annotations/instances_{split}2017.json``.

    ``images`` are COCO image records (``id``, ``file_name``, ``height``, ``width``);
    ``annotations`` need ``image_id``, ``category_id``, ``segmentation`` and may set
    ``iscrowd``; ids, areas and boxes are filled in.
    """
    for index, record in enumerate(images):
        array = random_rgb(record["height"], record["width"], seed=index)
        write_image(root / f"{split}2017" / record["file_name"], array)
    full = [
        {"id": number, "iscrowd": 0, "area": 1.0, "bbox": [0, 0, 1, 1], **annotation}
        for number, annotation in enumerate(annotations, start=1)
    ]
    document = {
        "info": {"description": "fcnlab test fixture"},
        "images": images,
        "annotations": full,
        "categories": [
            {"id": cat, "name": name, "supercategory": "thing"} for cat, name in categories.items()
        ],
    }
    path = root / "annotations" / f"instances_{split}2017.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return root


def voc_annotation_xml(file_name: str, size: tuple[int, int], objects: list[dict[str, Any]]) -> str:
    """A devkit ``Annotations/*.xml`` document: ``size`` (H, W) and one ``<object>`` per dict
    with ``name``, ``bndbox`` (xmin, ymin, xmax, ymax: 1-based, inclusive) and optionally
    ``difficult``; a key set to None leaves its element out (a broken file)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = file_name
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "The VOC2007 Database"
    size_element = ET.SubElement(root, "size")
    ET.SubElement(size_element, "width").text = str(size[1])
    ET.SubElement(size_element, "height").text = str(size[0])
    ET.SubElement(size_element, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for record in objects:
        element = ET.SubElement(root, "object")
        if record.get("name") is not None:
            ET.SubElement(element, "name").text = record["name"]
        ET.SubElement(element, "pose").text = "Unspecified"
        ET.SubElement(element, "truncated").text = "0"
        if record.get("difficult") is not None:
            ET.SubElement(element, "difficult").text = str(record["difficult"])
        if record.get("bndbox") is not None:
            bndbox = ET.SubElement(element, "bndbox")
            for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), record["bndbox"], strict=True):
                if value is not None:
                    ET.SubElement(bndbox, tag).text = str(value)
    return ET.tostring(root, encoding="unicode")


def write_voc_detection(
    root: Path,
    splits: dict[str, list[str]],
    objects: dict[str, list[dict[str, Any]]],
    sizes: dict[str, tuple[int, int]],
) -> Path:
    """VOC detection: ``JPEGImages/{id}.jpg``, ``Annotations/{id}.xml`` (see
    :func:`voc_annotation_xml`) and ``ImageSets/Main/{split}.txt``."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for index, (image_id, records) in enumerate(objects.items()):
        size = sizes[image_id]
        write_image(root / "JPEGImages" / f"{image_id}.jpg", random_rgb(*size, seed=index))
        xml = voc_annotation_xml(f"{image_id}.jpg", size, records)
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
    lists = root / "ImageSets" / "Main"
    lists.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def write_coco_export(
    annotation_file: Path,
    image_folder: Path,
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    categories: list[dict[str, Any]],
) -> Path:
    """A COCO-format file as a labelling tool exports it: ``annotation_file`` holds exactly the
    records given (with the ``info`` and ``licenses`` the tools add), and each image record's
    ``file_name`` is written, as a JPEG of its ``height`` x ``width``, under ``image_folder``."""
    for index, record in enumerate(images):
        array = random_rgb(record["height"], record["width"], seed=index)
        write_image(image_folder / record["file_name"], array)
    document = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "version": ""},
        "categories": categories,
        "images": images,
        "annotations": annotations,
    }
    annotation_file.parent.mkdir(parents=True, exist_ok=True)
    annotation_file.write_text(json.dumps(document))
    return annotation_file

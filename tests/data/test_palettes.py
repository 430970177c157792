from __future__ import annotations

import numpy as np
import pytest

from fcnlab.data.palettes import (
    ADE20K_CLASSES,
    ADE20K_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_ID_TO_TRAIN_ID,
    CITYSCAPES_PALETTE,
    COCO_CATEGORIES,
    COCO_IDS_OF_VOC_CLASSES,
    VOC_CLASSES,
    voc_palette,
)


def devkit_colormap(n: int) -> np.ndarray:
    """The VOC devkit's ``labelcolormap.m``, transcribed loop for loop."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        ident, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((ident >> 0) & 1) << (7 - j)
            g |= ((ident >> 1) & 1) << (7 - j)
            b |= ((ident >> 2) & 1) << (7 - j)
            ident >>= 3
        cmap[i] = (r, g, b)
    return cmap


def test_voc_palette_matches_the_devkit() -> None:
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    np.testing.assert_array_equal(palette, devkit_colormap(256))
    # Hand-checked rows: aeroplane, bicycle, bird, person and the void border.
    assert palette[[1, 2, 3, 15, 255]].tolist() == [
        [128, 0, 0],
        [0, 128, 0],
        [128, 128, 0],
        [192, 128, 128],
        [224, 224, 192],
    ]
    np.testing.assert_array_equal(voc_palette(21), palette[:21])
    with pytest.raises(ValueError, match="between 1 and 256"):
        voc_palette(257)


def test_cityscapes_train_classes_follow_the_official_table() -> None:
    assert len(CITYSCAPES_CLASSES) == 19 and CITYSCAPES_PALETTE.shape == (19, 3)
    assert CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[18] == "bicycle"
    assert CITYSCAPES_CLASSES[11] == "person" and CITYSCAPES_CLASSES[13] == "car"
    assert CITYSCAPES_PALETTE[0].tolist() == [128, 64, 128]
    assert CITYSCAPES_PALETTE[13].tolist() == [0, 0, 142]
    assert sorted(CITYSCAPES_ID_TO_TRAIN_ID) == list(range(34))
    train_ids = [t for t in CITYSCAPES_ID_TO_TRAIN_ID.values() if t != 255]
    assert sorted(train_ids) == list(range(19))


def test_ade20k_and_coco_tables() -> None:
    assert len(ADE20K_CLASSES) == 150 and ADE20K_PALETTE.shape == (150, 3)
    assert ADE20K_CLASSES[:3] == ("wall", "building", "sky") and ADE20K_CLASSES[-1] == "flag"
    assert len(COCO_CATEGORIES) == 80 and max(COCO_CATEGORIES) == 90
    coco_names = [COCO_CATEGORIES[cat] for cat in COCO_IDS_OF_VOC_CLASSES]
    renamed = {
        "aeroplane": "airplane",
        "diningtable": "dining table",
        "motorbike": "motorcycle",
        "pottedplant": "potted plant",
        "sofa": "couch",
        "tvmonitor": "tv",
    }
    assert coco_names == [renamed.get(name, name) for name in VOC_CLASSES[1:]]

"""Class names, label tables and colour maps of the published segmentation data sets."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def voc_palette(n: int = 256) -> np.ndarray:
    """Pascal VOC's colour map as an ``(n, 3)`` uint8 array.

    The devkit's ``labelcolormap``: the bits of the class index are dealt out in turn to red,
    green and blue, most significant colour bit first, so neighbouring classes get very
    different colours (index 255, VOC's ``void`` border, comes out as (224, 224, 192)).
    """
    if not 1 <= n <= 256:
        raise ValueError(f"voc_palette(n={n}): n must be between 1 and 256")
    index = np.arange(n)
    palette = np.zeros((n, 3), dtype=np.uint8)
    for shift in range(8):
        for channel in range(3):
            bit = (index >> (3 * shift + channel)) & 1
            palette[:, channel] |= (bit << (7 - shift)).astype(np.uint8)
    return palette


VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


class CityscapesLabel(NamedTuple):
    """One row of the official Cityscapes label table (cityscapesScripts ``helpers/labels.py``)."""

    name: str
    id: int
    train_id: int
    category: str
    color: tuple[int, int, int]


# fmt: off
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled",             0, 255, "void",         (0, 0, 0)),
    CityscapesLabel("ego vehicle",           1, 255, "void",         (0, 0, 0)),
    CityscapesLabel("rectification border",  2, 255, "void",         (0, 0, 0)),
    CityscapesLabel("out of roi",            3, 255, "void",         (0, 0, 0)),
    CityscapesLabel("static",                4, 255, "void",         (0, 0, 0)),
    CityscapesLabel("dynamic",               5, 255, "void",         (111, 74, 0)),
    CityscapesLabel("ground",                6, 255, "void",         (81, 0, 81)),
    CityscapesLabel("road",                  7,   0, "flat",         (128, 64, 128)),
    CityscapesLabel("sidewalk",              8,   1, "flat",         (244, 35, 232)),
    CityscapesLabel("parking",               9, 255, "flat",         (250, 170, 160)),
    CityscapesLabel("rail track",           10, 255, "flat",         (230, 150, 140)),
    CityscapesLabel("building",             11,   2, "construction", (70, 70, 70)),
    CityscapesLabel("wall",                 12,   3, "construction", (102, 102, 156)),
    CityscapesLabel("fence",                13,   4, "construction", (190, 153, 153)),
    CityscapesLabel("guard rail",           14, 255, "construction", (180, 165, 180)),
    CityscapesLabel("bridge",               15, 255, "construction", (150, 100, 100)),
    CityscapesLabel("tunnel",               16, 255, "construction", (150, 120, 90)),
    CityscapesLabel("pole",                 17,   5, "object",       (153, 153, 153)),
    CityscapesLabel("polegroup",            18, 255, "object",       (153, 153, 153)),
    CityscapesLabel("traffic light",        19,   6, "object",       (250, 170, 30)),
    CityscapesLabel("traffic sign",         20,   7, "object",       (220, 220, 0)),
    CityscapesLabel("vegetation",           21,   8, "nature",       (107, 142, 35)),
    CityscapesLabel("terrain",              22,   9, "nature",       (152, 251, 152)),
    CityscapesLabel("sky",                  23,  10, "sky",          (70, 130, 180)),
    CityscapesLabel("person",               24,  11, "human",        (220, 20, 60)),
    CityscapesLabel("rider",                25,  12, "human",        (255, 0, 0)),
    CityscapesLabel("car",                  26,  13, "vehicle",      (0, 0, 142)),
    CityscapesLabel("truck",                27,  14, "vehicle",      (0, 0, 70)),
    CityscapesLabel("bus",                  28,  15, "vehicle",      (0, 60, 100)),
    CityscapesLabel("caravan",              29, 255, "vehicle",      (0, 0, 90)),
    CityscapesLabel("trailer",              30, 255, "vehicle",      (0, 0, 110)),
    CityscapesLabel("train",                31,  16, "vehicle",      (0, 80, 100)),
    CityscapesLabel("motorcycle",           32,  17, "vehicle",      (0, 0, 230)),
    CityscapesLabel("bicycle",              33,  18, "vehicle",      (119, 11, 32)),
    CityscapesLabel("license plate",        -1,  -1, "vehicle",      (0, 0, 142)),
)
# fmt: on

# The 19 evaluated classes in trainId order, with their table colours.
CITYSCAPES_TRAIN_LABELS: tuple[CityscapesLabel, ...] = tuple(
    sorted((label for label in CITYSCAPES_LABELS if 0 <= label.train_id < 255),
           key=lambda label: label.train_id)
)  # fmt: skip
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(label.name for label in CITYSCAPES_TRAIN_LABELS)
CITYSCAPES_PALETTE: np.ndarray = np.array(
    [label.color for label in CITYSCAPES_TRAIN_LABELS], dtype=np.uint8
)
# labelId -> trainId for every id a ``*_gtFine_labelIds.png`` can hold.
CITYSCAPES_ID_TO_TRAIN_ID: dict[int, int] = {
    label.id: label.train_id for label in CITYSCAPES_LABELS if label.id >= 0
}

# The 150 classes of the ADE20K SceneParsing benchmark (``objectInfo150``), in label order 1..150.
ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van",
    "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle",
    "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase",
    "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

# The colours the SceneParsing toolkit and most code bases draw ADE20K's 150 classes with.
ADE20K_PALETTE: np.ndarray = np.array([
    [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3],
    [120, 120, 80], [140, 140, 140], [204, 5, 255], [230, 230, 230], [4, 250, 7],
    [224, 5, 255], [235, 255, 7], [150, 5, 61], [120, 120, 70], [8, 255, 51],
    [255, 6, 82], [143, 255, 140], [204, 255, 4], [255, 51, 7], [204, 70, 3],
    [0, 102, 200], [61, 230, 250], [255, 6, 51], [11, 102, 255], [255, 7, 71],
    [255, 9, 224], [9, 7, 230], [220, 220, 220], [255, 9, 92], [112, 9, 255],
    [8, 255, 214], [7, 255, 224], [255, 184, 6], [10, 255, 71], [255, 41, 10],
    [7, 255, 255], [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7],
    [255, 122, 8], [0, 255, 20], [255, 8, 41], [255, 5, 153], [6, 51, 255],
    [235, 12, 255], [160, 150, 20], [0, 163, 255], [140, 140, 140], [250, 10, 15],
    [20, 255, 0], [31, 255, 0], [255, 31, 0], [255, 224, 0], [153, 255, 0],
    [0, 0, 255], [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255],
    [11, 200, 200], [255, 82, 0], [0, 255, 245], [0, 61, 255], [0, 255, 112],
    [0, 255, 133], [255, 0, 0], [255, 163, 0], [255, 102, 0], [194, 255, 0],
    [0, 143, 255], [51, 255, 0], [0, 82, 255], [0, 255, 41], [0, 255, 173],
    [10, 0, 255], [173, 255, 0], [0, 255, 153], [255, 92, 0], [255, 0, 255],
    [255, 0, 245], [255, 0, 102], [255, 173, 0], [255, 0, 20], [255, 184, 184],
    [0, 31, 255], [0, 255, 61], [0, 71, 255], [255, 0, 204], [0, 255, 194],
    [0, 255, 82], [0, 10, 255], [0, 112, 255], [51, 0, 255], [0, 194, 255],
    [0, 122, 255], [0, 255, 163], [255, 153, 0], [0, 255, 10], [255, 112, 0],
    [143, 255, 0], [82, 0, 255], [163, 255, 0], [255, 235, 0], [8, 184, 170],
    [133, 0, 255], [0, 255, 92], [184, 0, 255], [255, 0, 31], [0, 184, 255],
    [0, 214, 255], [255, 0, 112], [92, 255, 0], [0, 224, 255], [112, 224, 255],
    [70, 184, 160], [163, 0, 255], [153, 0, 255], [71, 255, 0], [255, 0, 163],
    [255, 204, 0], [255, 0, 143], [0, 255, 235], [133, 255, 0], [255, 0, 235],
    [245, 0, 255], [255, 0, 122], [255, 245, 0], [10, 190, 212], [214, 255, 0],
    [0, 204, 255], [20, 0, 255], [255, 255, 0], [0, 153, 255], [0, 41, 255],
    [0, 255, 204], [41, 0, 255], [41, 255, 0], [173, 0, 255], [0, 245, 255],
    [71, 0, 255], [122, 0, 255], [0, 255, 184], [0, 92, 255], [184, 255, 0],
    [0, 133, 255], [255, 214, 0], [25, 194, 194], [102, 255, 0], [92, 0, 255],
], dtype=np.uint8)  # fmt: skip

# COCO's 80 "thing" categories: category id (1..90, with gaps) -> name, as in instances_*.json.
COCO_CATEGORIES: dict[int, str] = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep",
    21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe", 27: "backpack",
    28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee", 35: "skis",
    36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat", 40: "baseball glove",
    41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
    54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza",
    60: "donut", 61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed",
    67: "dining table", 70: "toilet", 72: "tv", 73: "laptop", 74: "mouse", 75: "remote",
    76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster", 81: "sink",
    82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}  # fmt: skip

# The COCO category id of each VOC class, in VOC order (torchvision's reference ``CAT_LIST``);
# background has no COCO category.
COCO_IDS_OF_VOC_CLASSES: tuple[int, ...] = (
    5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72,
)  # fmt: skip

"""What a consumer of a trained model needs besides its weights: the model's recipe, the class
names and colours, the input normalisation and layout.

The same JSON block travels with every export (ONNX ``metadata_props``, the safetensors header,
TorchScript's extra files) under the key ``"fcnlab"``, so an exported file alone turns an image
into coloured masks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fcnlab.config import Config, ModelConfig

logger = logging.getLogger("fcnlab.inference")

METADATA_KEY = "fcnlab"
FORMAT_VERSION = 1
# The exported network's input and output, spelled out for consumers in other languages.
INPUT_LAYOUT = {
    "name": "image",
    "layout": "NCHW",
    "dtype": "float32",
    "channels": "RGB",
    "preprocess": "pixel / 255, then (x - mean) / std per channel",
}
OUTPUT_LAYOUT = {"name": "logits", "layout": "NKHW", "dtype": "float32", "labels": "argmax over K"}


@dataclass
class ModelMetadata:
    """A trained segmentation model's recipe (``build_model`` arguments) and its data contract."""

    name: str
    num_classes: int
    classes: list[str]
    palette: list[list[int]]
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    encoder: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    ignore_index: int = 255
    input: dict[str, str] = field(default_factory=lambda: dict(INPUT_LAYOUT))
    output: dict[str, str] = field(default_factory=lambda: dict(OUTPUT_LAYOUT))
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if len(self.classes) != self.num_classes or len(self.palette) < self.num_classes:
            raise ValueError(
                f"metadata of {self.name!r}: {self.num_classes} classes but {len(self.classes)} "
                f"names and {len(self.palette)} palette colours (expected one name and at least "
                "one colour per class)"
            )

    def to_json(self) -> str:
        """The metadata as one JSON string."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "<metadata>") -> ModelMetadata:
        """The inverse of :meth:`to_json`; ``source`` names the file in errors."""
        try:
            data = json.loads(text)
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
            return cls(**data)
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{source}: unreadable fcnlab metadata ({error})") from None

    def palette_array(self) -> np.ndarray:
        """The palette as a (K, 3) uint8 array."""
        return np.asarray(self.palette, dtype=np.uint8)

    def model_config(self) -> ModelConfig:
        """The :class:`ModelConfig` that rebuilds the architecture (no pretrained weights)."""
        return ModelConfig(
            name=self.name,
            num_classes=self.num_classes,
            encoder=self.encoder,
            options=dict(self.options),
        )


def default_palette(num_classes: int) -> list[list[int]]:
    """The PASCAL VOC colour map's first ``num_classes`` colours (distinct up to 256)."""
    from fcnlab.data.palettes import voc_palette

    return voc_palette(max(num_classes, 1))[:num_classes].tolist()


def dataset_labels(config: Config) -> tuple[list[str], list[list[int]]] | None:
    """Class names and palette of the config's validation set, or None when it cannot be built
    here (its files are elsewhere) or does not match ``model.num_classes``."""
    from fcnlab.data import build_dataset
    from fcnlab.models import model_task

    data = config.data
    options = {**data.options, **data.val_options}
    try:
        # The data set's view for the model's task: a detector's classes are the data set's
        # object classes (no background), a segmenter's its pixel classes.
        dataset = build_dataset(
            data.name,
            root=data.root,
            split=data.val_split,
            transforms=None,
            task=model_task(config.model.name),
            **options,
        )
    except Exception as error:  # any data set error: the labels fall back to numbers
        logger.info("no class names from data set %r: %s", data.name, error)
        return None
    classes = getattr(dataset, "classes", None)
    palette = getattr(dataset, "palette", None)
    if classes is None or len(classes) != config.model.num_classes:
        return None
    colours = default_palette(len(classes)) if palette is None else np.asarray(palette).tolist()
    return [str(name) for name in classes], [[int(c) for c in rgb] for rgb in colours]


def metadata_from_config(config: Config) -> ModelMetadata:
    """The metadata of a model trained by ``config``: classes and palette from its data set when
    it can be built, else ``"0", "1", ...`` and the VOC colour map."""
    model, transforms = config.model, config.data.transforms
    labels = dataset_labels(config)
    if labels is None:
        labels = [str(i) for i in range(model.num_classes)], default_palette(model.num_classes)
    normalize = transforms.normalize
    return ModelMetadata(
        name=model.name,
        num_classes=model.num_classes,
        classes=labels[0],
        palette=labels[1],
        mean=list(transforms.mean) if normalize else [0.0, 0.0, 0.0],
        std=list(transforms.std) if normalize else [1.0, 1.0, 1.0],
        encoder=model.encoder,
        options=dict(model.options),
        ignore_index=config.data.ignore_index,
    )

"""Turn the configuration's data section into data sets with their transforms.

Names are looked up in the data registry (``fcnlab.data``); an unknown name or a bad option is an
error that starts with the config key it came from. The model comes from
:func:`fcnlab.models.from_config.build_model_from_config`, the loss from the model's task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from fcnlab.config import DataConfig, TransformConfig


def _named(key: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except (KeyError, ValueError, TypeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise ValueError(f"{key}: {message}") from None


def build_transforms(config: TransformConfig, train: bool) -> Callable[..., Any]:
    """The joint transform pipeline: random scale/crop/flip/jitter for training when
    ``crop_size`` is set, else an optional fixed resize; normalisation in both. The same steps
    move a mask or a target's boxes and instance masks (:mod:`fcnlab.data.transforms`)."""
    from fcnlab.data import eval_transforms, train_transforms

    mean = config.mean if config.normalize else None
    if train and config.crop_size is not None:
        scale = tuple(config.scale_range) if config.scale_range else (1.0, 1.0)
        return train_transforms(
            config.crop_size, scale=scale, flip=config.flip, jitter=config.jitter,
            mean=mean, std=config.std,
        )  # fmt: skip
    return eval_transforms(config.eval_size, mean=mean, std=config.std)


def build_split(config: DataConfig, split: str, train: bool, task: str | None = None) -> Dataset:
    """Data set ``config.name``'s view for ``task`` (None: its default view, class maps) for
    ``split``, with the training or evaluation transforms."""
    from fcnlab.data import build_dataset

    options = dict(config.options) if train else {**config.options, **config.val_options}
    transforms = build_transforms(config.transforms, train)
    return _named(
        f"data ({config.name!r}, split {split!r})",
        lambda: build_dataset(
            config.name, root=config.root, split=split, transforms=transforms, task=task, **options
        ),
    )


def check_num_classes(dataset: Dataset, num_classes: int, what: str) -> None:
    """Raise unless ``dataset.num_classes`` (when it has one) equals the model's; the error adds
    the data set's ``classes_note`` (which files hold the values behind its count), if any."""
    found = getattr(dataset, "num_classes", None)
    if found is not None and found != num_classes:
        note = getattr(dataset, "classes_note", lambda expected: "")(num_classes)
        raise ValueError(
            f"model.num_classes = {num_classes} but the {what} data set has {found} classes"
            + (f"; {note}" if note else "")
        )

"""Turn the configuration's sections into objects: model, data sets, transforms, loss.

Names are looked up in the registries (``fcnlab.models``, ``fcnlab.data``, ``fcnlab.losses``); an
unknown name or a bad option is an error that starts with the config key it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import DataConfig, ModelConfig, TrainConfig, TransformConfig
from fcnlab.runtime.checkpoint import load_matching, load_weights


def _named(key: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except (KeyError, ValueError, TypeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise ValueError(f"{key}: {message}") from None


def build_model_from_config(config: ModelConfig) -> nn.Module:
    """``build_model(name, num_classes, encoder, encoder_weights, **options)``, then the
    matching tensors of ``init_from`` when set."""
    from fcnlab.models import build_model

    model = _named(
        "model",
        lambda: build_model(
            config.name,
            config.num_classes,
            encoder=config.encoder,
            encoder_weights=config.encoder_weights,
            **config.options,
        ),
    )
    if config.init_from is not None:
        load_matching(model, load_weights(config.init_from), config.init_from)
    return model


def build_transforms(
    config: TransformConfig, train: bool, task: str = "segmentation"
) -> Callable[..., Any]:
    """The joint transform pipeline: random scale/crop/flip/jitter for training when
    ``crop_size`` is set, else an optional fixed resize; normalisation in both. For
    ``task="detection"`` the same steps move boxes instead of a mask."""
    from fcnlab import data

    if task == "detection":
        train_transforms, eval_transforms = (
            data.detection_train_transforms,
            data.detection_eval_transforms,
        )
    else:
        train_transforms, eval_transforms = data.train_transforms, data.eval_transforms
    mean = config.mean if config.normalize else None
    if train and config.crop_size is not None:
        scale = tuple(config.scale_range) if config.scale_range else (1.0, 1.0)
        return train_transforms(
            config.crop_size, scale=scale, flip=config.flip, jitter=config.jitter,
            mean=mean, std=config.std,
        )  # fmt: skip
    return eval_transforms(config.eval_size, mean=mean, std=config.std)


def build_split(config: DataConfig, split: str, train: bool, task: str = "segmentation") -> Dataset:
    """Data set ``config.name`` for ``split`` with the training or evaluation transforms; a
    detection ``task`` asks the data set for box targets."""
    from fcnlab.data import build_dataset

    options = dict(config.options) if train else {**config.options, **config.val_options}
    if task != "segmentation":
        options["task"] = task
    transforms = build_transforms(config.transforms, train, task)
    return _named(
        f"data ({config.name!r}, split {split!r})",
        lambda: build_dataset(
            config.name, root=config.root, split=split, transforms=transforms, **options
        ),
    )


def build_loss_from_config(config: TrainConfig, ignore_index: int) -> nn.Module:
    """``fcnlab.losses.build_loss`` with the configured spec, class weights and aux weight."""
    from fcnlab.losses import build_loss

    return _named(
        "train.loss",
        lambda: build_loss(
            config.loss,
            class_weights=config.class_weights,
            ignore_index=ignore_index,
            aux_weight=config.aux_weight,
        ),
    )


def check_num_classes(dataset: Dataset, num_classes: int, what: str) -> None:
    """Raise unless ``dataset.num_classes`` (when it has one) equals the model's."""
    found = getattr(dataset, "num_classes", None)
    if found is not None and found != num_classes:
        raise ValueError(
            f"model.num_classes = {num_classes} but the {what} data set has {found} classes"
        )

"""Turn the configuration's data section into data sets with their transforms.

Names are looked up in the data registry (``fcnlab.data``); an unknown name or a bad option is an
error that starts with the config key it came from. With ``data.cache`` each split is decoded
into memory as it is built (:mod:`fcnlab.data.cache`), before any DataLoader worker starts. The
model comes from :func:`fcnlab.models.from_config.build_model_from_config`, the loss from the
model's task.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from torch.utils.data import Dataset

from fcnlab.config import DataConfig, TransformConfig
from fcnlab.runtime.console import Bars, print_literal


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


def build_split(
    config: DataConfig,
    split: str,
    train: bool,
    task: str | None = None,
    use_cache: bool = True,
    console: Console | None = None,
) -> Dataset:
    """Data set ``config.name``'s view for ``task`` (None: its default view, class maps) for
    ``split``, with the training or evaluation transforms; decoded into memory when
    ``data.cache`` is set, unless ``use_cache`` is False (one pass over a split gains nothing
    from it). ``console`` shows the cache's progress and size (default: standard error)."""
    from fcnlab.data import build_dataset

    options = dict(config.options) if train else {**config.options, **config.val_options}
    transforms = build_transforms(config.transforms, train)
    dataset = _named(
        f"data ({config.name!r}, split {split!r})",
        lambda: build_dataset(
            config.name, root=config.root, split=split, transforms=transforms, task=task, **options
        ),
    )
    if config.cache and use_cache:
        cache_split(dataset, config, split, console)
    return dataset


def cache_split(
    dataset: Dataset, config: DataConfig, split: str, console: Console | None = None
) -> None:
    """Decode ``dataset`` (split ``split`` of ``config``) into memory, with ``data.num_workers``
    threads, and say what it holds on ``console`` (only the first process of a group prints).

    A data set that reads no files (``shapes`` draws its samples) is an error, and so is a
    cache that would not fit in the memory available to this machine's processes (each process
    of a distributed run holds its own copy)."""
    from fcnlab.data.base import FileDataset
    from fcnlab.data.cache import CacheTooLargeError, cache_dataset, format_bytes

    if not isinstance(dataset, FileDataset):
        raise ValueError(
            f"data.cache: data set {config.name!r} reads no files (it draws its samples), so "
            "there is nothing to decode and keep in memory; set data.cache: false"
        )
    if console is None:
        # torchrun's RANK: the other processes of a group fill their caches quietly.
        console = Console(stderr=True, quiet=os.environ.get("RANK", "0") != "0")
    copies = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    start = time.perf_counter()
    with Bars(console) as bars:
        try:
            cache = cache_dataset(
                dataset,
                config.num_workers,
                lambda indices: bars.track(indices, f"decoding split {split!r} into memory"),
                copies,
            )
        except CacheTooLargeError as error:
            raise CacheTooLargeError(
                f"data.cache: split {split!r}: {error}; set data.cache: false to decode the "
                "files in every epoch"
            ) from None
    print_literal(
        console,
        f"data.cache: split {split!r} in memory: {cache.images} images, "
        f"{format_bytes(cache.nbytes)}, decoded in {time.perf_counter() - start:.1f} s",
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

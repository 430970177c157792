"""Class pixel statistics of a data set, SegNet's median-frequency class balancing, and box
counts per class for detection."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from fcnlab.data.transforms import IGNORE_INDEX


@dataclass
class ClassFrequencies:
    """Pixel counts per class (K,), as collected by ``FrequencyCounter``.

    pixels: pixels of class c; image_pixels: all pixels (ignored ones included) of the images in
    which c is present; images: how many images contain c; ignored / total: ignored and all pixels.
    """

    classes: tuple[str, ...]
    pixels: torch.Tensor
    image_pixels: torch.Tensor
    images: torch.Tensor
    ignored: int = 0
    total: int = 0

    @property
    def frequency(self) -> torch.Tensor:
        """Eigen & Fergus' freq(c): pixels of c / pixels of the images with c (0 if absent)."""
        return self.pixels.double() / self.image_pixels.clamp(min=1).double()

    @property
    def share(self) -> torch.Tensor:
        """Each class's share of all labelled (not ignored) pixels."""
        return self.pixels.double() / max(int(self.pixels.sum()), 1)


@dataclass
class FrequencyCounter:
    """Accumulates ``ClassFrequencies`` one mask at a time (``update``), for any loop."""

    classes: tuple[str, ...]
    ignore_index: int = IGNORE_INDEX
    pixels: torch.Tensor = field(init=False)
    image_pixels: torch.Tensor = field(init=False)
    images: torch.Tensor = field(init=False)
    ignored: int = field(init=False, default=0)
    total: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        k = len(self.classes)
        self.pixels = torch.zeros(k, dtype=torch.int64)
        self.image_pixels = torch.zeros(k, dtype=torch.int64)
        self.images = torch.zeros(k, dtype=torch.int64)

    def update(self, mask: torch.Tensor, name: str = "mask") -> None:
        """Count one (H, W) mask; values other than 0..K-1 and the ignore index raise ValueError
        naming ``name`` and the values found."""
        k = len(self.classes)
        labelled = mask[mask != self.ignore_index].long()
        bad = labelled[(labelled < 0) | (labelled >= k)]
        if bad.numel():
            found = ", ".join(map(str, bad.unique()[:10].tolist()))
            raise ValueError(
                f"{name} holds values {found}, outside classes 0..{k - 1} "
                f"and ignore {self.ignore_index}"
            )
        counts = torch.bincount(labelled, minlength=k)
        present = counts > 0
        self.pixels += counts
        self.image_pixels += present * mask.numel()
        self.images += present
        self.ignored += mask.numel() - labelled.numel()
        self.total += mask.numel()

    def result(self) -> ClassFrequencies:
        """The statistics so far."""
        return ClassFrequencies(
            self.classes,
            self.pixels.clone(),
            self.image_pixels.clone(),
            self.images.clone(),
            self.ignored,
            self.total,
        )


@dataclass
class BoxCounts:
    """Boxes per class (K,), as collected by ``BoxCounter``: boxes of class c, images with at
    least one, and how many of its boxes are crowd regions (COCO) or difficult (VOC);
    ``empty_images`` of ``total_images`` hold no box at all."""

    classes: tuple[str, ...]
    boxes: torch.Tensor
    images: torch.Tensor
    crowd: torch.Tensor
    difficult: torch.Tensor
    empty_images: int = 0
    total_images: int = 0

    @property
    def share(self) -> torch.Tensor:
        """Each class's share of all boxes."""
        return self.boxes.double() / max(int(self.boxes.sum()), 1)


@dataclass
class BoxCounter:
    """Accumulates ``BoxCounts`` one detection target at a time (``update``)."""

    classes: tuple[str, ...]
    counts: BoxCounts = field(init=False)

    def __post_init__(self) -> None:
        zeros = [torch.zeros(len(self.classes), dtype=torch.int64) for _ in range(4)]
        self.counts = BoxCounts(self.classes, *zeros)

    def update(self, target: Mapping[str, Any], name: str = "target") -> None:
        """Count one target's ``labels`` (and its ``iscrowd`` / ``difficult`` flags, where it has
        them); labels outside 0..K-1 raise ValueError naming ``name``."""
        k = len(self.classes)
        labels = torch.as_tensor(target["labels"]).long().reshape(-1)
        bad = labels[(labels < 0) | (labels >= k)]
        if bad.numel():
            found = ", ".join(map(str, bad.unique()[:10].tolist()))
            raise ValueError(f"{name} has labels {found}, outside classes 0..{k - 1}")
        counts = self.counts
        boxes = torch.bincount(labels, minlength=k)
        counts.boxes += boxes
        counts.images += boxes > 0
        for key, total in (("iscrowd", counts.crowd), ("difficult", counts.difficult)):
            flags = torch.as_tensor(target.get(key, torch.zeros_like(labels))).bool().reshape(-1)
            total += torch.bincount(labels[flags], minlength=k)
        counts.empty_images += int(labels.numel() == 0)
        counts.total_images += 1

    def result(self) -> BoxCounts:
        """The counts so far."""
        c = self.counts
        tensors = (c.boxes.clone(), c.images.clone(), c.crowd.clone(), c.difficult.clone())
        return BoxCounts(c.classes, *tensors, c.empty_images, c.total_images)


def class_frequencies(
    dataset: Any, progress: Callable[[int], None] | None = None
) -> ClassFrequencies:
    """Class pixel statistics over every mask of ``dataset`` (which has ``classes`` and, unless
    255, ``ignore_index``). Masks come from ``dataset.load_mask(i)`` where the data set has it
    (no image decoding, no transforms), else from ``dataset[i][1]``, so build it without random
    transforms. ``progress(i)`` is called after each sample."""
    counter = FrequencyCounter(
        tuple(dataset.classes), getattr(dataset, "ignore_index", IGNORE_INDEX)
    )
    load_mask = getattr(dataset, "load_mask", lambda index: dataset[index][1])
    for index in range(len(dataset)):
        counter.update(load_mask(index), name=f"mask of sample {index}")
        if progress is not None:
            progress(index)
    return counter.result()


def median_frequency_weights(freqs: ClassFrequencies | torch.Tensor) -> torch.Tensor:
    """SegNet's class weights (after Eigen & Fergus): weight(c) = median_freq / freq(c).

    ``freqs`` is a ``ClassFrequencies`` or a tensor of freq(c) values. The median is taken over
    the classes present (freq > 0), averaging the two middle values for an even count (NumPy's
    convention); absent classes get weight 0 so that they cannot blow up a loss.
    """
    freq = freqs.frequency if isinstance(freqs, ClassFrequencies) else freqs.double()
    present = freq > 0
    if not present.any():
        raise ValueError("median_frequency_weights: no class is present (every frequency is 0)")
    median = torch.quantile(freq[present], 0.5)
    weights = torch.where(present, median / freq.clamp(min=torch.finfo(freq.dtype).tiny), 0.0)
    return weights.float()

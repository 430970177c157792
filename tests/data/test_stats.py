from __future__ import annotations

import pytest
import torch

from fcnlab.data import (
    BoxCounter,
    ClassFrequencies,
    class_frequencies,
    make_target,
    median_frequency_weights,
)


class Masks:
    """A minimal data set of given masks (images are not needed for statistics)."""

    def __init__(self, masks: list[list[list[int]]], classes: tuple[str, ...]) -> None:
        self.masks = [torch.tensor(m) for m in masks]
        self.classes = classes
        self.ignore_index = 255

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.masks[index]
        return torch.zeros(3, *mask.shape), mask


# Hand-worked: class 0 has 2 + 1 pixels in images 1 and 2 (8 pixels), class 1 has 1 + 4 pixels in
# images 1 and 3 (8 pixels), class 2 has 3 pixels in image 2 (4 pixels); class 3 never appears.
HAND = Masks([[[0, 0], [1, 255]], [[0, 2], [2, 2]], [[1, 1], [1, 1]]], ("a", "b", "c", "absent"))


def test_class_frequencies_hand_example() -> None:
    seen: list[int] = []
    freqs = class_frequencies(HAND, progress=seen.append)
    assert seen == [0, 1, 2]
    assert freqs.classes == ("a", "b", "c", "absent")
    assert freqs.pixels.tolist() == [3, 5, 3, 0]
    assert freqs.image_pixels.tolist() == [8, 8, 4, 0]
    assert freqs.images.tolist() == [2, 2, 1, 0]
    assert (freqs.ignored, freqs.total) == (1, 12)
    assert torch.allclose(
        freqs.frequency, torch.tensor([3 / 8, 5 / 8, 3 / 4, 0], dtype=torch.float64)
    )
    assert torch.allclose(
        freqs.share, torch.tensor([3 / 11, 5 / 11, 3 / 11, 0], dtype=torch.float64)
    )


def test_median_frequency_weights_hand_example() -> None:
    # freq = 3/8, 5/8, 3/4 -> median 5/8 -> weights 5/3, 1, 5/6; the absent class gets 0
    weights = median_frequency_weights(class_frequencies(HAND))
    assert weights.dtype == torch.float32
    assert torch.allclose(weights, torch.tensor([5 / 3, 1.0, 5 / 6, 0.0]))


def test_median_of_an_even_count_averages_the_middle_two() -> None:
    weights = median_frequency_weights(torch.tensor([0.1, 0.2, 0.4, 0.8]))
    assert torch.allclose(weights, torch.tensor([3.0, 1.5, 0.75, 0.375]))


def test_median_frequency_weights_need_a_present_class() -> None:
    with pytest.raises(ValueError, match="no class is present"):
        median_frequency_weights(torch.zeros(3))


def test_values_outside_the_classes_are_named() -> None:
    bad = Masks([[[0, 1]], [[0, 7]]], ("a", "b"))
    with pytest.raises(ValueError, match=r"sample 1 holds values 7, outside classes 0..1"):
        class_frequencies(bad)


def test_load_mask_is_preferred_over_getitem() -> None:
    class WithLoadMask(Masks):
        def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
            raise AssertionError("statistics must not decode images")

        def load_mask(self, index: int) -> torch.Tensor:
            return self.masks[index]

    freqs = class_frequencies(WithLoadMask([[[0, 1, 1]]], ("a", "b")))
    assert isinstance(freqs, ClassFrequencies) and freqs.pixels.tolist() == [1, 2]


def test_box_counter_hand_counted() -> None:
    counter = BoxCounter(("cat", "dog", "bird"))
    counter.update(make_target([[0, 0, 1, 1]] * 3, [1, 1, 0], 0, (2, 2), iscrowd=[0, 1, 0]))
    counter.update(make_target([[0, 0, 1, 1]] * 2, [1, 0], 1, (2, 2), difficult=[1, 1]))
    counter.update(make_target([], [], 2, (2, 2)))
    counts = counter.result()
    assert counts.boxes.tolist() == [2, 3, 0] and counts.images.tolist() == [2, 2, 0]
    assert counts.crowd.tolist() == [0, 1, 0] and counts.difficult.tolist() == [1, 1, 0]
    assert counts.empty_images == 1 and counts.total_images == 3
    assert counts.share.tolist() == [0.4, 0.6, 0.0]
    with pytest.raises(ValueError, match=r"sample 7 has labels 3, outside classes 0\.\.2"):
        counter.update({"labels": torch.tensor([3])}, name="sample 7")

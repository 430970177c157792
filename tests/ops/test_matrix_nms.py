"""fcnlab.ops.matrix_nms against a brute-force reference written from the paper's definition
(SOLOv2, Eq. 4: a double loop over the higher-scored masks), hand-worked examples, and greedy
NMS where the two keep the same masks."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.devices import DEVICES

from fcnlab.ops import matrix_nms


def pair_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of two masks from their pixels (soft: sum(ab) / (sum a + sum b - sum ab)); 0 if empty."""
    a, b = a.double(), b.double()
    intersection = float((a * b).sum())
    union = float(a.sum() + b.sum()) - intersection
    return intersection / union if union > 0 else 0.0


def reference_matrix_nms(
    masks: torch.Tensor, labels: list[int], scores: list[float], kernel: str, sigma: float
) -> list[float]:
    """Decayed scores straight from the paper: for each mask j, the minimum over the same-class
    masks i above it of f(iou_ij) / f(max IoU of i with a same-class mask above i)."""

    def f(x: float) -> float:
        return math.exp(-sigma * x * x) if kernel == "gaussian" else 1 - x

    ranked = sorted(range(len(scores)), key=lambda k: -scores[k])  # stable: ties by position
    decayed = [0.0] * len(scores)
    for position, j in enumerate(ranked):
        above = [i for i in ranked[:position] if labels[i] == labels[j]]
        ratios = []
        for i in above:
            above_i = [k for k in ranked[: ranked.index(i)] if labels[k] == labels[i]]
            compensation = max((pair_iou(masks[k], masks[i]) for k in above_i), default=0.0)
            ratios.append(f(pair_iou(masks[i], masks[j])) / f(compensation))
        decayed[j] = scores[j] * (min(ratios) if ratios else 1.0)
    return decayed


def random_rectangles(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` bool masks (count, size, size), each a random axis-aligned rectangle."""
    masks = torch.zeros(count, size, size, dtype=torch.bool)
    for mask in masks:
        y0, x0 = torch.randint(0, size - 1, (2,), generator=generator).tolist()
        y1 = torch.randint(y0 + 1, size + 1, (1,), generator=generator).item()
        x1 = torch.randint(x0 + 1, size + 1, (1,), generator=generator).item()
        mask[y0:y1, x0:x1] = True
    return masks


def strips(*intervals: tuple[int, int], width: int = 12) -> torch.Tensor:
    """Bool masks (K, 1, width), mask k covering the columns [a, b) of ``intervals[k]``."""
    masks = torch.zeros(len(intervals), 1, width, dtype=torch.bool)
    for mask, (a, b) in zip(masks, intervals, strict=True):
        mask[0, a:b] = True
    return masks


def greedy_mask_nms(masks: torch.Tensor, labels: list[int], scores: list[float], t: float) -> set:
    """Indices greedy NMS keeps: the best remaining mask stays, and every remaining same-class
    mask whose IoU with it exceeds ``t`` goes."""
    remaining = sorted(range(len(scores)), key=lambda k: -scores[k])
    kept = set()
    while remaining:
        best = remaining.pop(0)
        kept.add(best)
        remaining = [
            k
            for k in remaining
            if labels[k] != labels[best] or pair_iou(masks[best], masks[k]) <= t
        ]
    return kept


@pytest.mark.parametrize("kernel, sigma", [("gaussian", 2.0), ("gaussian", 0.5), ("linear", 2.0)])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("device", DEVICES)
def test_matrix_nms_matches_the_papers_definition(
    kernel: str, sigma: float, seed: int, device: str
) -> None:
    g = torch.Generator().manual_seed(seed)
    masks = random_rectangles(12, 10, g)
    labels = torch.randint(0, 3, (12,), generator=g)
    scores = torch.rand(12, generator=g, dtype=torch.float64)
    expected = reference_matrix_nms(masks, labels.tolist(), scores.tolist(), kernel, sigma)
    on_device = (masks.to(device), labels.to(device), scores.to(device))
    decayed = matrix_nms(*on_device, kernel=kernel, sigma=sigma)
    assert decayed.dtype == torch.float64 and decayed.device.type == device
    decayed = decayed.cpu()
    assert torch.allclose(decayed, torch.tensor(expected, dtype=torch.float64), atol=1e-6)
    assert (decayed < scores - 1e-3).any()  # something overlapped: the test is not vacuous


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_soft_masks_decay_by_their_soft_iou(kernel: str) -> None:
    g = torch.Generator().manual_seed(7)
    masks = torch.rand(8, 6, 6, generator=g) * random_rectangles(8, 6, g)
    labels = torch.randint(0, 2, (8,), generator=g)
    scores = torch.rand(8, generator=g)
    expected = reference_matrix_nms(masks, labels.tolist(), scores.tolist(), kernel, 2.0)
    decayed = matrix_nms(masks, labels, scores, kernel=kernel)
    assert torch.allclose(decayed, torch.tensor(expected, dtype=torch.float32), atol=1e-6)


def test_float_zero_one_masks_give_the_bool_result() -> None:
    g = torch.Generator().manual_seed(3)
    masks = random_rectangles(9, 8, g)
    labels = torch.randint(0, 2, (9,), generator=g)
    scores = torch.rand(9, generator=g)
    for kernel in ("gaussian", "linear"):
        assert torch.equal(
            matrix_nms(masks.float(), labels, scores, kernel=kernel),
            matrix_nms(masks, labels, scores, kernel=kernel),
        )


def test_three_masks_by_hand() -> None:
    # A = [0, 4), B = [0, 10), C = [4, 10), one class, scored A > B > C:
    # iou(A, B) = 4/10, iou(B, C) = 6/10, iou(A, C) = 0; B's compensation is 0.4.
    masks = strips((0, 4), (0, 10), (4, 10))
    labels = torch.zeros(3, dtype=torch.int64)
    scores = torch.tensor([0.9, 0.8, 0.7])
    # linear: B: 1 - 0.4 = 0.6; C: min(A: 1 / 1, B: (1 - 0.6) / (1 - 0.4) = 2/3) = 2/3.
    linear = matrix_nms(masks, labels, scores, kernel="linear")
    assert torch.allclose(linear, torch.tensor([0.9, 0.8 * 0.6, 0.7 * 2 / 3]))
    # gaussian, sigma 2: B: exp(-2 * 0.16); C: min(A: 1, B: exp(-2 * (0.36 - 0.16))).
    gaussian = matrix_nms(masks, labels, scores, kernel="gaussian", sigma=2.0)
    expected = torch.tensor([0.9, 0.8 * math.exp(-0.32), 0.7 * math.exp(-0.4)])
    assert torch.allclose(gaussian, expected)


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_the_top_mask_never_decays(kernel: str) -> None:
    g = torch.Generator().manual_seed(5)
    masks = random_rectangles(10, 8, g)
    masks[4] = True  # the top mask covers the image: every mask overlaps it
    scores = torch.rand(10, generator=g)
    scores[4] = 2.0
    decayed = matrix_nms(masks, torch.zeros(10, dtype=torch.int64), scores, kernel=kernel)
    assert decayed[4] == 2.0
    assert (decayed <= scores).all()


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_disjoint_masks_keep_their_scores(kernel: str) -> None:
    masks = strips((0, 3), (3, 5), (5, 6), (8, 12))
    scores = torch.tensor([0.3, 0.9, 0.5, 0.7])
    decayed = matrix_nms(masks, torch.zeros(4, dtype=torch.int64), scores, kernel=kernel)
    assert torch.equal(decayed, scores)


def test_a_duplicate_of_the_top_mask() -> None:
    masks = strips((2, 7), (2, 7))
    labels = torch.tensor([1, 1])
    scores = torch.tensor([0.9, 0.6])
    gaussian = matrix_nms(masks, labels, scores, kernel="gaussian", sigma=2.0)
    assert torch.allclose(gaussian, torch.tensor([0.9, 0.6 * math.exp(-2.0)]))
    gaussian = matrix_nms(masks, labels, scores, kernel="gaussian", sigma=0.7)
    assert torch.allclose(gaussian, torch.tensor([0.9, 0.6 * math.exp(-0.7)]))
    assert matrix_nms(masks, labels, scores, kernel="linear").tolist() == [
        pytest.approx(0.9),
        0.0,
    ]


def test_duplicates_under_the_linear_kernel_give_no_nan() -> None:
    # A, A', A'' are one mask; D = [0, 10) has IoU 0.5 with A = [0, 5). A' and A'' have
    # compensation 1 (f = 0): A' decays to 0 through A, A'' too, and D by A alone: 1 - 0.5.
    masks = strips((0, 5), (0, 5), (0, 5), (0, 10))
    labels = torch.zeros(4, dtype=torch.int64)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    decayed = matrix_nms(masks, labels, scores, kernel="linear")
    assert not decayed.isnan().any()
    assert torch.allclose(decayed, torch.tensor([0.9, 0.0, 0.0, 0.3]))
    # The permuted input gives the permuted output, the copies' ratios staying out of the min.
    permutation = torch.tensor([3, 1, 0, 2])
    permuted = matrix_nms(masks[permutation], labels, scores[permutation], kernel="linear")
    assert torch.equal(permuted, decayed[permutation])


def test_a_large_sigma_gives_no_nan() -> None:
    masks = strips((0, 5), (0, 5), (0, 5), (0, 10))
    decayed = matrix_nms(
        masks, torch.zeros(4, dtype=torch.int64), torch.tensor([0.9, 0.8, 0.7, 0.6]), sigma=1e4
    )
    assert torch.equal(decayed, torch.tensor([0.9, 0.0, 0.0, 0.0]))


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_different_classes_never_decay_each_other(kernel: str) -> None:
    masks = strips((2, 7), (2, 7), (3, 8), (0, 12))
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    decayed = matrix_nms(masks, torch.tensor([0, 1, 2, 3]), scores, kernel=kernel)
    assert torch.equal(decayed, scores)


def test_ties_rank_by_input_position() -> None:
    masks = strips((2, 7), (2, 7))
    decayed = matrix_nms(masks, torch.tensor([0, 0]), torch.tensor([0.5, 0.5]), kernel="linear")
    assert decayed.tolist() == [0.5, 0.0]


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_scores_come_back_in_the_input_order(kernel: str) -> None:
    g = torch.Generator().manual_seed(11)
    masks = random_rectangles(15, 9, g)
    labels = torch.randint(0, 2, (15,), generator=g)
    scores = torch.rand(15, generator=g)
    decayed = matrix_nms(masks, labels, scores, kernel=kernel)
    for _ in range(3):
        permutation = torch.randperm(15, generator=g)
        permuted = matrix_nms(masks[permutation], labels[permutation], scores[permutation], kernel)
        assert torch.allclose(permuted, decayed[permutation], atol=1e-7)


def test_no_masks_give_no_scores() -> None:
    decayed = matrix_nms(
        torch.zeros(0, 5, 4, dtype=torch.bool), torch.zeros(0, dtype=torch.int64), torch.zeros(0)
    )
    assert decayed.shape == (0,)


def test_bad_inputs_are_named() -> None:
    masks = strips((0, 4), (2, 6))
    labels, scores = torch.tensor([0, 0]), torch.tensor([0.9, 0.8])
    with pytest.raises(ValueError, match="kernel must be one of"):
        matrix_nms(masks, labels, scores, kernel="gauss")
    with pytest.raises(ValueError, match="sigma must be a finite number"):
        matrix_nms(masks, labels, scores, sigma=-1.0)
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        matrix_nms(masks[:, 0], labels, scores)
    with pytest.raises(ValueError, match="one label and one score per mask: 2 masks"):
        matrix_nms(masks, labels[:1], scores)
    with pytest.raises(ValueError, match=r"float masks in \[0, 1\], got values from 0.0 to 2.0"):
        matrix_nms(masks.float() * 2, labels, scores)


def no_chain_clusters(seed: int) -> tuple[torch.Tensor, list[int], list[float]]:
    """Masks (K, 6, 48) in four column strips, two classes per strip: in each (strip, class) a
    leader and up to three pairwise disjoint followers that each overlap the leader and score
    below it. No mask both overlaps a same-class mask above it and one below it."""
    g = torch.Generator().manual_seed(seed)
    masks, labels, scores = [], [], []
    for strip in range(4):
        left = 12 * strip
        for label in (0, 1):
            top = torch.rand(1, generator=g).item() * 0.5 + 0.5
            leader = torch.zeros(6, 48, dtype=torch.bool)
            leader[: torch.randint(3, 7, (1,), generator=g).item(), left + 1 : left + 11] = True
            masks.append(leader)
            labels.append(label)
            scores.append(top)
            followers = torch.randint(0, 4, (1,), generator=g).item()
            for k in range(followers):
                a, b = left + 12 * k // followers, left + 12 * (k + 1) // followers
                trim = (b - a) // 3 + 1
                a += torch.randint(0, trim, (1,), generator=g).item()
                b -= torch.randint(0, trim, (1,), generator=g).item()
                y0, y1 = torch.randint(0, 3, (1,), generator=g).item(), 6
                y1 -= torch.randint(0, 3, (1,), generator=g).item()
                follower = torch.zeros(6, 48, dtype=torch.bool)
                follower[y0:y1, a:b] = True
                masks.append(follower)
                labels.append(label)
                scores.append(top * torch.rand(1, generator=g).item())
    return torch.stack(masks), labels, scores


# t = n / 200 in lowest terms: no IoU of these masks (unions under 200 pixels) lies within 3e-5 of
# it, so float rounding cannot move a mask across the cut.
@pytest.mark.parametrize("t", [0.205, 0.355, 0.505, 0.705])
def test_without_chains_greedy_nms_keeps_what_the_decay_keeps(t: float) -> None:
    # With no chains every mask that overlaps j from above has compensation 0, so
    # decay_j = f(max_i iou_ij), and greedy NMS keeps j exactly when that IoU is at most t:
    # greedy at t == {decay >= f(t)} (decayed score >= f(t) x the score), for either kernel.
    dropped = kept_followers = 0
    for seed in range(8):
        masks, labels, scores = no_chain_clusters(seed)
        greedy = greedy_mask_nms(masks, labels, scores, t)
        dropped += len(scores) - len(greedy)
        kept_followers += len(greedy) - 8  # each (strip, class) leader stays
        for kernel, cut in (("linear", 1 - t), ("gaussian", math.exp(-2.0 * t * t))):
            score = torch.tensor(scores)
            decay = matrix_nms(masks, torch.tensor(labels), score, kernel) / score
            assert {k for k in range(len(scores)) if decay[k] >= cut} == greedy
    assert dropped > 0 and kept_followers > 0  # both sides of the cut are tested


def test_with_a_chain_greedy_and_matrix_nms_differ_both_ways() -> None:
    # The hand-worked masks above (decays 1, 0.6, 2/3 under the linear kernel): B overlaps A,
    # C overlaps B, not A. At t = 0.3 greedy drops B (IoU 0.4) and so keeps C, while C's decay
    # 2/3 is below 1 - t = 0.7; at t = 0.5 greedy keeps B and drops C (IoU 0.6), while C's
    # decay 2/3 stays above 0.5 (B's own suppression compensates).
    masks = strips((0, 4), (0, 10), (4, 10))
    labels, scores = [0, 0, 0], [0.9, 0.8, 0.7]
    decay = matrix_nms(masks, torch.tensor(labels), torch.tensor(scores), "linear") / torch.tensor(
        scores
    )
    assert greedy_mask_nms(masks, labels, scores, 0.3) == {0, 2}
    assert {k for k in range(3) if decay[k] >= 0.7} == {0}
    assert greedy_mask_nms(masks, labels, scores, 0.5) == {0, 1}
    assert {k for k in range(3) if decay[k] >= 0.5} == {0, 1, 2}

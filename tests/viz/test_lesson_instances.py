from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.dynamic_heads import heads_by_hand, run_head
from matplotlib.figure import Figure
from scipy import ndimage

from fcnlab.models.instance.dynamic import dynamic_mask_head
from fcnlab.viz.lesson import SECTIONS, write_lesson
from fcnlab.viz.lesson_instances import (
    COORDINATE_SCALE,
    COPY_SHIFT,
    DIRECTIONS,
    HEAD_LAYERS,
    NMS_SCORES,
    TOUCHING_INDEX,
    DynamicKernelExample,
    MatrixNMSExample,
    SemanticInstanceExample,
    contact_pairs,
    disk_kernel,
    dynamic_kernel_example,
    lesson_shapes,
    matrix_nms_example,
    plot_dynamic_kernel,
    plot_matrix_nms,
    plot_semantic_vs_instances,
    region_map,
    semantic_instance_example,
    semantic_instance_facts,
    shift_mask,
)


@pytest.fixture(scope="module")
def semantic() -> SemanticInstanceExample:
    return semantic_instance_example()


@pytest.fixture(scope="module")
def dynamic(semantic: SemanticInstanceExample) -> DynamicKernelExample:
    return dynamic_kernel_example(semantic)


@pytest.fixture(scope="module")
def nms(semantic: SemanticInstanceExample) -> MatrixNMSExample:
    return matrix_nms_example(semantic)


# --- connected regions -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_region_map_equals_scipy_label_with_4_connectivity(seed: int) -> None:
    # scipy numbers regions in raster order of their first pixel too, so the maps are equal.
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(23, 31, generator=generator) < 0.55
    labels, count = region_map(mask)
    expected, expected_count = ndimage.label(mask.numpy())
    assert count == expected_count > 1
    assert torch.equal(labels, torch.from_numpy(expected).long())


def test_region_map_by_hand() -> None:
    # Diagonal neighbours are not connected: the two pixels on the diagonal are two regions.
    mask = torch.tensor(
        [
            [1, 1, 0, 0],
            [0, 0, 1, 0],
            [1, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    labels, count = region_map(mask)
    assert count == 3
    assert labels.tolist() == [[1, 1, 0, 0], [0, 0, 2, 0], [3, 0, 2, 2]]
    assert region_map(torch.zeros(2, 2, dtype=torch.bool))[1] == 0


def test_region_map_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(H, W\) mask, got shape \(1, 2, 2\)"):
        region_map(torch.ones(1, 2, 2, dtype=torch.bool))


def test_contact_pairs_by_hand() -> None:
    a = torch.zeros(3, 4, dtype=torch.bool)
    b = torch.zeros(3, 4, dtype=torch.bool)
    a[0:2, 0:2] = True
    b[0:2, 2] = True  # to the right of a's two rows: two pairs
    b[2, 0] = True  # below a's (1, 0): one pair
    b[2, 3] = True  # diagonal to nothing of a
    assert contact_pairs(a, b) == 3
    assert contact_pairs(b, a) == 3
    assert contact_pairs(a, torch.zeros_like(a)) == 0


# --- 8a. one region, two instances ---------------------------------------------------------------


def test_touching_pair_is_one_region_of_the_class_map_and_two_instances(
    semantic: SemanticInstanceExample,
) -> None:
    first, second = (semantic.masks[k] for k in semantic.pair)
    label = semantic.kinds.index(semantic.kind)
    assert semantic.labels[list(semantic.pair)].tolist() == [label, label]
    assert int((semantic.labels == label).sum()) == 2
    class_pixels = (semantic.class_map == label + 1).numpy()
    # The class map's pixels of the kind are exactly the two instances, in one 4-connected region.
    assert np.array_equal(class_pixels, (first | second).numpy())
    assert ndimage.label(class_pixels)[1] == 1
    # Each instance alone is one region, and the two do not overlap but sit side by side.
    assert ndimage.label(first.numpy())[1] == 1
    assert ndimage.label(second.numpy())[1] == 1
    assert not (first & second).any()
    assert (ndimage.binary_dilation(first.numpy()) & second.numpy()).any()


def test_counts_of_regions_and_instances_match_scipy(semantic: SemanticInstanceExample) -> None:
    for label, kind in enumerate(semantic.kinds):
        held = int((semantic.labels == label).sum())
        if held == 0:
            assert kind not in semantic.regions
            continue
        assert semantic.instances[kind] == held
        assert semantic.regions[kind] == ndimage.label((semantic.class_map == label + 1).numpy())[1]
    # The lesson's image: two touching disks and two touching triangles.
    assert semantic.regions == {"disk": 1, "triangle": 1}
    assert semantic.instances == {"disk": 2, "triangle": 2}
    assert len(semantic.region_masks) == 2
    union = semantic.region_masks.any(dim=0)
    assert torch.equal(union, semantic.class_map > 0)


def test_contact_counts_side_by_side_pixel_pairs(semantic: SemanticInstanceExample) -> None:
    first, second = (semantic.masks[k].numpy() for k in semantic.pair)
    across = (first[:, :-1] & second[:, 1:]).sum() + (second[:, :-1] & first[:, 1:]).sum()
    down = (first[:-1] & second[1:]).sum() + (second[:-1] & first[1:]).sum()
    assert semantic.contact == across + down > 0


def test_an_image_without_a_touching_pair_is_refused() -> None:
    with pytest.raises(ValueError, match=r"val image 0 has 0 disk instance\(s\)"):
        semantic_instance_example(index=0)
    with pytest.raises(ValueError, match=r"kind 'hexagon' is not a Shapes kind"):
        semantic_instance_example(kind="hexagon")


def test_lesson_image_is_the_instance_views_own(semantic: SemanticInstanceExample) -> None:
    dataset = lesson_shapes()
    image, target = dataset[TOUCHING_INDEX]
    assert dataset.task == "instance" and dataset.touching > 0
    assert torch.equal(image, semantic.image)
    assert torch.equal(target["masks"], semantic.masks)


# --- 8b. dynamic kernels ------------------------------------------------------------------------


def test_disk_kernel_logit_is_radius_minus_the_octagon_distance() -> None:
    radius = 20.0
    params = disk_kernel(radius)[None]
    generator = torch.Generator().manual_seed(0)
    coordinates = torch.randn(1, 2, 5, 7, generator=generator)
    feature = (torch.rand(1, 1, 5, 7, generator=generator) < 0.5).float()
    logits = dynamic_mask_head(
        torch.cat((coordinates, feature), 1), params, DIRECTIONS, HEAD_LAYERS
    )
    dx, dy = coordinates[0, 0], coordinates[0, 1]
    # 8 directions 45 degrees apart: sum of relu(u_k . d) = |dx| + |dy| + (|dx+dy| + |dx-dy|)/sqrt2.
    octagon = dx.abs() + dy.abs() + ((dx + dy).abs() + (dx - dy).abs()) / math.sqrt(2)
    expected = radius - COORDINATE_SCALE * math.pi / DIRECTIONS * octagon
    on = feature[0, 0] == 1
    torch.testing.assert_close(logits[0, 0][on], expected[on], atol=1e-3, rtol=1e-5)
    # Off the feature every unit adds at least 1: far below zero everywhere.
    assert (logits[0, 0][~on] <= radius - COORDINATE_SCALE * math.pi + 1e-3).all()


def test_disk_kernel_distance_is_within_5_percent() -> None:
    angles = torch.linspace(0, 2 * math.pi, 721)  # every half degree
    # One pixel of distance from the instance, in relative coordinates, in every direction.
    coordinates = torch.stack((angles.cos(), angles.sin())) / COORDINATE_SCALE
    inputs = torch.cat((coordinates, torch.ones(1, 721)))[None, :, None, :]
    logits = dynamic_mask_head(inputs, disk_kernel(0.0)[None], DIRECTIONS, HEAD_LAYERS)
    distance = -logits.flatten()
    # The octagon's sum is 1 + sqrt2 along an axis and 2 (cos 22.5 + sin 22.5) halfway between
    # two directions, scaled by pi / 8.
    assert distance.min().item() == pytest.approx((1 + math.sqrt(2)) * math.pi / 8, abs=1e-5)
    top = 2 * (math.cos(math.pi / 8) + math.sin(math.pi / 8)) * math.pi / 8
    assert distance.max().item() == pytest.approx(top, abs=1e-5)
    assert distance.min() > 0.948 and distance.max() < 1.027


def test_dynamic_heads_equal_the_heads_written_by_hand(dynamic: DynamicKernelExample) -> None:
    heads = heads_by_hand(dynamic.params, 3, DIRECTIONS, HEAD_LAYERS)
    for k, head in enumerate(heads):
        logit = run_head(dynamic.inputs[k : k + 1], head)[0, 0]
        torch.testing.assert_close(logit.sigmoid(), dynamic.probabilities[k])
    assert dynamic.convolution_gap < 1e-9


def test_each_head_lights_up_its_own_object(
    semantic: SemanticInstanceExample, dynamic: DynamicKernelExample
) -> None:
    # mask IoU by counting pixels, independently of fcnlab.ops.mask_iou
    for k in range(2):
        for j in range(2):
            mask, truth = dynamic.masks[k], semantic.masks[semantic.pair[j]]
            iou = float((mask & truth).sum()) / float((mask | truth).sum())
            assert dynamic.iou[k, j].item() == pytest.approx(iou, abs=1e-6)
    assert dynamic.iou.diagonal().min() > 0.9
    assert dynamic.iou[0, 1] < 0.01 and dynamic.iou[1, 0] < 0.01
    assert dynamic.masks.shape == semantic.masks[list(semantic.pair)].shape


def test_heads_differ_only_in_the_last_bias_and_see_one_feature_map(
    dynamic: DynamicKernelExample,
) -> None:
    differ = (dynamic.params[0] != dynamic.params[1]).nonzero().flatten().tolist()
    assert differ == [dynamic.params.shape[1] - 1]
    assert dynamic.params.shape[1] == 3 * 8 + 8 + 8 + 1
    torch.testing.assert_close(dynamic.params[:, -1], dynamic.radii.float())
    # The shared features reach both heads unchanged; only the coordinate channels differ.
    assert torch.equal(dynamic.inputs[0, 2], dynamic.mask_features[0])
    assert torch.equal(dynamic.inputs[1, 2], dynamic.mask_features[0])
    assert not torch.equal(dynamic.inputs[0, :2], dynamic.inputs[1, :2])


def test_relative_coordinates_are_zero_at_each_instances_location(
    dynamic: DynamicKernelExample,
) -> None:
    # Cell (i, j) is centred at input pixel (4 j + 2, 4 i + 2): the coordinates there are
    # (location - centre) / 64.
    for k in range(2):
        x, y = dynamic.locations[k].tolist()
        j, i = 5, 7
        expected = torch.tensor([(x - (4 * j + 2)) / 64, (y - (4 * i + 2)) / 64])
        torch.testing.assert_close(dynamic.inputs[k, :2, i, j], expected)


# --- 8c. Matrix NMS -----------------------------------------------------------------------------


def test_shift_mask_moves_and_drops_what_leaves() -> None:
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[0, 0] = mask[3, 4] = mask[1, 2] = True
    moved = shift_mask(mask, dx=1, dy=-1)
    expected = torch.zeros(4, 5, dtype=torch.bool)
    expected[0, 3] = True  # (1, 2) -> (0, 3); (0, 0) leaves at the top, (3, 4) at the right
    assert torch.equal(moved, expected)
    assert torch.equal(shift_mask(mask, 0, 0), mask)


def test_matrix_nms_example_decays_as_the_paper_says(nms: MatrixNMSExample) -> None:
    assert nms.scores.tolist() == pytest.approx(NMS_SCORES)
    first, copy, second, other = nms.masks
    assert torch.equal(copy, other) and nms.labels[3] != nms.labels[0]
    assert nms.labels[:3].unique().numel() == 1
    # IoU by counting pixels.
    iou = float((first & copy).sum()) / float((first | copy).sum())
    assert nms.iou[0, 1].item() == pytest.approx(iou, abs=1e-6)
    assert 0.5 < iou < 0.95
    assert not (first & second).any() and not (copy & second).any()
    gaussian, linear = nms.decayed["gaussian"], nms.decayed["linear"]
    # The copy's only higher same-class mask is the top one (compensation 0): f(iou) / f(0).
    assert gaussian[1].item() == pytest.approx(0.8 * math.exp(-2.0 * iou**2), abs=1e-6)
    assert linear[1].item() == pytest.approx(0.8 * (1 - iou), abs=1e-6)
    # The top mask, the touching neighbour (IoU 0) and the other class keep their scores.
    for decayed in (gaussian, linear):
        assert decayed[[0, 2, 3]].tolist() == pytest.approx([0.9, 0.7, 0.6])


def test_copy_moves_away_from_the_touching_neighbour(
    semantic: SemanticInstanceExample, nms: MatrixNMSExample
) -> None:
    def centroid(mask: torch.Tensor) -> np.ndarray:
        return np.array(ndimage.center_of_mass(mask.numpy()))

    first, second = (semantic.masks[k] for k in semantic.pair)
    away = centroid(first) - centroid(second)
    moved = nms.names[1]
    dx, dy = (int(v) for v in moved[moved.index("(") + 1 : moved.index(")")].split(","))
    assert np.hypot(dx, dy) == pytest.approx(COPY_SHIFT, abs=0.75)
    assert dy * away[0] + dx * away[1] > 0
    assert torch.equal(nms.masks[1], torch.roll(first, (dy, dx), (0, 1)) & nms.masks[1])


# --- figures and the page -----------------------------------------------------------------------


@pytest.mark.parametrize("plot", [plot_semantic_vs_instances, plot_dynamic_kernel, plot_matrix_nms])
def test_each_figure_function_returns_a_figure(plot: object) -> None:
    fig = plot()  # type: ignore[operator]
    assert isinstance(fig, Figure)
    assert len(fig.axes) >= 4


def test_dynamic_kernel_figure_prints_both_layers() -> None:
    texts = [{text.get_text() for text in ax.texts} for ax in plot_dynamic_kernel().axes]
    assert any({"0.71", "-0.71", "1", "-1", "0"} <= found for found in texts)
    assert any("-25.13" in found for found in texts)


def test_section_is_on_the_page_with_its_checked_numbers(
    tmp_path: Path, semantic: SemanticInstanceExample, nms: MatrixNMSExample
) -> None:
    sections = [section for section in SECTIONS if section.slug == "semantic-to-instance"]
    assert len(sections) == 1 and sections[0].title == "8. From semantic to instance"
    page = write_lesson(tmp_path / "page", sections=sections, dpi=30)
    text = page.read_text(encoding="utf-8")
    assert 'id="semantic-to-instance"' in text
    assert sorted(path.name for path in page.parent.glob("*.png")) == [
        f"semantic-to-instance-{k}.png" for k in (1, 2, 3)
    ]
    assert (
        html.escape(
            f"val image {TOUCHING_INDEX}: regions of each class in the class map: 'disk' 1, "
            "'triangle' 1; instances: 'disk' 2, 'triangle' 2"
        )
        in text
    )
    assert f"the two disks share {semantic.contact} side-by-side pixel pairs" in text
    assert "differ at index [40] only" in text
    gaussian = ", ".join(f"{v:.2f}" for v in nms.decayed["gaussian"].tolist())
    assert f"matrix_nms gaussian: 0.90, 0.80, 0.70, 0.60 -&gt; {gaussian}" in text
    assert "written by hand" in text


def test_facts_state_the_computed_numbers(
    dynamic: DynamicKernelExample, nms: MatrixNMSExample
) -> None:
    facts = semantic_instance_facts()
    for k in range(2):
        own, other = dynamic.iou[k, k].item(), dynamic.iou[k, 1 - k].item()
        assert any(
            fact.startswith(f"head {k + 1} ")
            and f"mask IoU {own:.2f} with its disk, {other:.2f} with the other" in fact
            for fact in facts
        )
    by_hand = next(fact for fact in facts if fact.startswith("moved A by hand"))
    gap = float(by_hand.rsplit(" ", 1)[1].rstrip(")"))
    assert gap < 1e-6
    linear = ", ".join(f"{v:.2f}" for v in nms.decayed["linear"].tolist())
    assert f"matrix_nms linear: 0.90, 0.80, 0.70, 0.60 -> {linear}" in facts

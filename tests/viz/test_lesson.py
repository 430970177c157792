from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image

from fcnlab.runtime.run_dir import RunLog, read_metrics
from fcnlab.viz.lesson import SECTIONS, LessonContext, Section, write_lesson
from fcnlab.viz.lesson_figures import (
    plot_checkerboard,
    plot_conv_matrix,
    plot_max_unpooling,
    plot_zero_insertion,
)
from fcnlab.viz.lesson_models import NUM_CLASSES, dense_prediction_example, fcn_comparison
from fcnlab.viz.lesson_numbers import (
    checkerboard_example,
    conv_matrix_example,
    interior,
    max_unpooling_example,
    upsampled_images,
    zero_insertion_example,
    zone_plate,
)
from fcnlab.viz.lesson_run import (
    StageScore,
    missing_metrics,
    plot_run_curves,
    run_facts,
    stage_scores,
)

VOID = {"meta", "img", "br", "hr", "link", "input"}


class StrictParser(HTMLParser):
    """Collects image sources and section ids and fails on any unbalanced or misnested tag."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes["src"] or "")
        if tag == "section":
            self.ids.append(attributes["id"] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def parse(page: Path) -> StrictParser:
    parser = StrictParser()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    assert parser.stack == []
    return parser


def axis_texts(fig: Figure) -> list[set[str]]:
    return [{text.get_text() for text in ax.texts} for ax in fig.axes]


# --- 1. zero insertion -------------------------------------------------------------------------


def test_zero_insertion_grid_holds_samples_at_even_positions_and_zeros_elsewhere() -> None:
    example = zero_insertion_example()
    expected = torch.zeros(8, 8, dtype=torch.float64)
    for row in range(4):
        for col in range(4):
            expected[2 * row, 2 * col] = 4 * row + col + 1
    assert torch.equal(example.image, torch.arange(1.0, 17.0, dtype=torch.float64).view(4, 4))
    assert torch.equal(example.zero_inserted, expected)


def test_zero_insertion_kernel_is_the_lecture_tent() -> None:
    expected = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    assert torch.equal(zero_insertion_example().kernel, expected.double())


def test_zero_insertion_result_matches_the_hand_worked_numbers() -> None:
    result = zero_insertion_example().result
    assert result.shape == (7, 7)
    assert result[0].tolist() == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert result[:, 0].tolist() == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0]
    assert result[1, 1].item() == (1 + 2 + 5 + 6) / 4
    # The grid is the linear function 1 + 4r + c, which bilinear interpolation reproduces exactly.
    rows = torch.arange(7.0, dtype=torch.float64).view(-1, 1)
    cols = torch.arange(7.0, dtype=torch.float64).view(1, -1)
    assert torch.equal(result, 1 + 2 * rows + 0.5 * cols)


def test_zero_insertion_figure_prints_the_numbers() -> None:
    texts = axis_texts(plot_zero_insertion())
    assert {"1", "16"} <= texts[0]
    assert {"0", "16"} <= texts[1]
    assert {"0.25", "0.5", "1"} == texts[2]
    assert {"1.5", "3.5", "15.5"} <= texts[3]


# --- 2. interpolation kernels ------------------------------------------------------------------


def test_zone_plate_is_in_unit_range_and_bright_at_the_centre() -> None:
    image = zone_plate(32)
    assert image.shape == (32, 32)
    assert image.min() >= 0 and image.max() <= 1
    assert image[15:17, 15:17].min() > 0.99


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_upsampled_images_equal_pytorch_interpolate(mode: str) -> None:
    image = zone_plate(16)
    reference = F.interpolate(image.view(1, 1, 16, 16), scale_factor=4, mode=mode)[0, 0]
    torch.testing.assert_close(upsampled_images(image)[mode], reference)


# --- 3. max unpooling --------------------------------------------------------------------------


def test_max_unpooling_example_by_hand() -> None:
    example = max_unpooling_example()
    assert example.pooled.tolist() == [[4.0, 6.0], [5.0, 7.0]]
    assert example.indices.tolist() == [[4, 7], [8, 14]]
    expected = [[0, 0, 0, 0], [4, 0, 0, 6], [5, 0, 0, 0], [0, 0, 7, 0]]
    assert example.unpooled.tolist() == expected


def test_max_unpooling_rejects_other_sizes() -> None:
    with pytest.raises(ValueError, match=r"\(4, 4\) image, got \(3, 3\)"):
        max_unpooling_example(torch.zeros(3, 3))


def test_max_unpooling_figure_frames_the_maxima() -> None:
    fig = plot_max_unpooling()
    assert len(fig.axes[0].patches) == 4
    assert axis_texts(fig)[2] == {"4", "7", "8", "14"}


# --- 4. convolution as a matrix ----------------------------------------------------------------


def test_conv_matrix_applies_the_convolution() -> None:
    example = conv_matrix_example()
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    weight = example.weight.view(1, 1, 3, 3)
    expected = F.conv2d(x, weight, stride=2, padding=1).flatten()
    torch.testing.assert_close(example.matrix @ x.flatten(), expected)


def test_conv_matrix_first_row_by_hand() -> None:
    # Output (0, 0) with padding 1 reads input rows/cols -1..1: taps 5, 6 on row 0, 8, 9 on row 1.
    row = conv_matrix_example().matrix[0]
    expected = torch.zeros(16, dtype=torch.float64)
    expected[[0, 1, 4, 5]] = torch.tensor([5.0, 6.0, 8.0, 9.0], dtype=torch.float64)
    assert torch.equal(row, expected)


def test_conv_matrix_tap_labels_name_each_nonzero() -> None:
    example = conv_matrix_example()
    assert example.matrix.shape == (4, 16)
    assert torch.equal(example.taps.double(), example.matrix)


def test_conv_matrix_transpose_equals_conv_transpose2d() -> None:
    example = conv_matrix_example()
    assert example.output_padding == 1
    y = example.y.view(1, 1, 2, 2)
    reference = F.conv_transpose2d(
        y, example.weight.view(1, 1, 3, 3), stride=2, padding=1, output_padding=1
    )[0, 0]
    torch.testing.assert_close(example.transposed, reference)
    torch.testing.assert_close(example.reference, reference)
    assert example.transposed[0, 0].item() == 5.0  # only tap 5 reaches input (0, 0), times y=1


def test_conv_matrix_figure_labels_taps() -> None:
    texts = axis_texts(plot_conv_matrix())
    assert texts[0] == {f"w{tap}" for tap in range(1, 10)}


# --- 5. checkerboards ----------------------------------------------------------------------------

OVERLAP_1D = {
    (3, 2): [1, 1, 2, 1, 2, 1, 2, 1, 1],
    (4, 2): [1, 1, 2, 2, 2, 2, 2, 2, 1, 1],
    (5, 2): [1, 1, 2, 2, 3, 2, 3, 2, 2, 1, 1],
    (6, 3): [1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1],
}


@pytest.mark.parametrize(("pair", "counts"), OVERLAP_1D.items())
def test_overlap_counts_by_hand(pair: tuple[int, int], counts: list[int]) -> None:
    kernel_size, stride = pair
    example = checkerboard_example(kernel_size, stride, input_size=4)
    line = torch.tensor(counts)
    assert torch.equal(example.overlap, torch.outer(line, line))


@pytest.mark.parametrize(
    ("pair", "side", "interior_counts", "free"),
    [
        ((3, 2), 5, {1, 2, 4}, False),
        ((4, 2), 4, {4}, True),
        ((5, 2), 3, {4, 6, 9}, False),
        ((6, 3), 5, {4}, True),
    ],
)
def test_checkerboard_interior(
    pair: tuple[int, int], side: int, interior_counts: set[int], free: bool
) -> None:
    # The interior drops the k - 1 border pixels on each side that the input's end starves.
    example = checkerboard_example(*pair, input_size=4)
    inner = interior(example.overlap, pair[0])
    assert inner.shape == (side, side)
    assert set(inner.flatten().tolist()) == interior_counts
    assert example.checkerboard_free is free


def test_constant_output_is_overlap_times_kernel_plus_bias() -> None:
    example = checkerboard_example(3, 2, input_size=4, bias=0.5)
    expected = example.overlap.double() * (2 / 3) ** 2 + 0.5
    torch.testing.assert_close(example.output, expected)
    # The bias moves every pixel by the same amount, so the interior spread is unchanged.
    spread = interior(example.output, 3).max() - interior(example.output, 3).min()
    torch.testing.assert_close(spread, torch.tensor(3 * (2 / 3) ** 2, dtype=torch.float64))


def test_checkerboard_figure_has_a_column_per_pair() -> None:
    fig = plot_checkerboard(pairs=((3, 2), (4, 2)))
    assert len([ax for ax in fig.axes if ax.get_title().startswith("k=")]) == 2


# --- 6. from classifier to dense predictor ----------------------------------------------------


def test_convolutionalized_classifier_gives_the_classifier_logits() -> None:
    example = dense_prediction_example()
    assert example.classifier_logits.shape == (NUM_CLASSES,)
    torch.testing.assert_close(example.fcn_logits, example.classifier_logits)


def test_heat_map_has_one_score_per_window_at_stride_32() -> None:
    example = dense_prediction_example(image_size=192)
    # pool5 of a 192x192 image is 6x6; an unpadded 3x3 fc6 leaves 4x4 windows.
    assert example.heat_map.shape == (NUM_CLASSES, 4, 4)
    assert example.image.shape == (3, 192, 192)


def test_fcn_comparison_scores_every_pixel_at_each_models_stride() -> None:
    example = fcn_comparison(image_size=64)
    assert example.output_strides == {"fcn32s": 32, "fcn8s": 8}
    for scores in example.scores.values():
        assert scores.shape == (NUM_CLASSES, 64, 64)
    assert example.mask.shape == (64, 64)


# --- 7. staged training ----------------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder whose metrics.jsonl is written by the engine's own RunLog."""
    run = tmp_path / "runs" / "demo"
    log = RunLog(run, tensorboard=False)
    for step in range(1, 9):
        stage = 0 if step <= 4 else 1
        log.write(
            {
                "kind": "train",
                "stage": stage,
                "epoch": 0,
                "step": step,
                "loss": 1 / step,
                "lr": 0.01 if stage == 0 else 0.001,
            }
        )
    for stage, step, miou in ((0, 4, 0.3), (1, 6, 0.4), (1, 8, 0.5)):
        log.write(
            {
                "kind": "eval",
                "stage": stage,
                "epoch": 0,
                "step": step,
                "mean_iou": miou,
                "pixel_accuracy": 0.9,
            }
        )
    log.close()
    return run


def test_stage_scores_keep_each_stages_last_evaluation(run_dir: Path) -> None:
    scores = stage_scores(read_metrics(run_dir))
    assert scores == [StageScore(0, 4, 0.3), StageScore(1, 8, 0.5)]
    assert run_facts(run_dir) == [
        "stage 1: mIoU 0.3000 at step 4",
        "stage 2: mIoU 0.5000 at step 8",
    ]


def test_run_section_explains_what_is_missing(tmp_path: Path) -> None:
    assert "--run" in (missing_metrics(None) or "")
    assert "has no metrics.jsonl" in (missing_metrics(tmp_path) or "")


def test_run_section_is_drawn_from_a_run_folder(run_dir: Path, tmp_path: Path) -> None:
    sections = [section for section in SECTIONS if section.slug == "staged-training"]
    page = write_lesson(tmp_path / "page", run=run_dir, sections=sections, dpi=30)
    assert parse(page).images == ["staged-training-1.png"]
    assert "stage 2: mIoU 0.5000 at step 8" in page.read_text(encoding="utf-8")
    curves = plot_run_curves(run_dir)
    assert len([line for line in curves.axes[0].lines if line.get_linestyle() == "--"]) == 2


# --- the page --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lesson_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lesson")
    write_lesson(out, dpi=30)  # every figure drawn, at a resolution that keeps the test quick
    return out


def test_page_parses_and_references_only_existing_pngs(lesson_dir: Path) -> None:
    parser = parse(lesson_dir / "index.html")
    assert parser.images, "the page shows no figure"
    for name in parser.images:
        assert "/" not in name and (lesson_dir / name).is_file(), name
        with Image.open(lesson_dir / name) as image:
            assert image.format == "PNG" and min(image.size) > 50
    assert sorted(path.name for path in lesson_dir.glob("*.png")) == sorted(parser.images)


def test_page_has_one_section_per_concept_with_its_figures(lesson_dir: Path) -> None:
    parser = parse(lesson_dir / "index.html")
    drawn = [section for section in SECTIONS if section.slug != "staged-training"]
    assert parser.ids == [*(section.slug for section in drawn), "not-shown"]
    for section in drawn:
        shown = [name for name in parser.images if name.startswith(f"{section.slug}-")]
        assert len(shown) == len(section.figures)


def test_page_shows_the_checked_numbers(lesson_dir: Path) -> None:
    text = (lesson_dir / "index.html").read_text(encoding="utf-8")
    assert "first row of the result: 1, 1.5, 2, 2.5, 3, 3.5, 4" in text
    assert "max |C^T vec(y) - conv_transpose2d(y)| = 0.0e+00" in text
    assert "kernel 3, stride 2: interior overlap counts [1, 2, 4] (checkerboard)" in text
    assert "output strides: fcn32s 32, fcn8s 8" in text
    assert "untrained" in text
    assert "7. Staged training: give a training run folder with --run" in text


def tiny_figure(context: LessonContext) -> Figure:
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    return fig


def test_sections_plug_in_and_unavailable_ones_are_listed_with_the_reason(tmp_path: Path) -> None:
    sections = [
        Section("drawn", "A drawn section", "text & more", [tiny_figure], lambda c: ["x < 1"]),
        Section(
            "needs-run",
            "Needs a run",
            "never drawn",
            [tiny_figure],
            unavailable=lambda c: None if c.run else "give --run",
        ),
    ]
    page = write_lesson(tmp_path / "page", sections=sections)
    parser = parse(page)
    assert parser.ids == ["drawn", "not-shown"]
    assert parser.images == ["drawn-1.png"]
    text = page.read_text(encoding="utf-8")
    assert "Needs a run: give --run" in text and "x &lt; 1" in text
    run = tmp_path / "run"
    run.mkdir()
    assert parse(write_lesson(tmp_path / "page2", run=run, sections=sections)).ids == [
        "drawn",
        "needs-run",
    ]


def test_missing_run_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"run directory .*nowhere.* does not exist"):
        write_lesson(tmp_path / "out", run=tmp_path / "nowhere")


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file.html"
    target.write_text("x")
    with pytest.raises(NotADirectoryError, match=r"file\.html"):
        write_lesson(target, sections=[])

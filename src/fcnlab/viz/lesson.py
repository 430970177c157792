"""``fcnlab.viz.lesson``: every concept of fully convolutional learning as a computed picture.

The page is a list of ``Section``s; each has a title, a paragraph, figure functions and a
function returning the numbers checked beside its figures. Later sections (run-dependent ones
included) are added by appending to ``SECTIONS``; a section that cannot be drawn for the given
context (no ``--run``, say) is listed at the end with its reason instead.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch.nn.functional as F
from matplotlib.figure import Figure

from fcnlab.viz.lesson_figures import (
    plot_checkerboard,
    plot_conv_matrix,
    plot_interpolation_kernels,
    plot_max_unpooling,
    plot_upsampled_images,
    plot_zero_insertion,
)
from fcnlab.viz.lesson_instances import (
    plot_dynamic_kernel,
    plot_matrix_nms,
    plot_semantic_vs_instances,
    semantic_instance_facts,
)
from fcnlab.viz.lesson_models import (
    FC6_KERNEL,
    IMAGE_SIZE,
    TRAIN_SIZE,
    dense_prediction_example,
    fcn_comparison,
    plot_dense_prediction,
    plot_fcn_comparison,
)
from fcnlab.viz.lesson_numbers import (
    CHECKERBOARD_PAIRS,
    checkerboard_example,
    conv_matrix_example,
    interior,
    max_unpooling_example,
    upsampled_images,
    zero_insertion_example,
    zone_plate,
)
from fcnlab.viz.lesson_run import missing_metrics, plot_run_curves, run_facts

DPI = 80


@dataclass(frozen=True)
class LessonContext:
    """What a section may draw from: the optional training-run directory (``--run``)."""

    run: Path | None = None


@dataclass(frozen=True)
class Section:
    """One concept: ``figures`` and ``facts`` take the context; ``unavailable`` says why not."""

    slug: str
    title: str
    paragraph: str  # HTML, written by us
    figures: Sequence[Callable[[LessonContext], Figure]]
    facts: Callable[[LessonContext], list[str]] = field(default=lambda context: [])
    unavailable: Callable[[LessonContext], str | None] = field(default=lambda context: None)


def _zero_insertion_facts(context: LessonContext) -> list[str]:
    example = zero_insertion_example()
    row = ", ".join(f"{v:g}" for v in example.result[0].tolist())
    return [
        f"first row of the result: {row}",
        f"result[1, 1] = {example.result[1, 1]:g}, the mean of 1, 2, 5 and 6",
    ]


def _interpolation_facts(context: LessonContext) -> list[str]:
    image = zone_plate()
    x = image.view(1, 1, *image.shape)
    facts = []
    for mode, out in upsampled_images(image).items():
        gap = (out - F.interpolate(x, scale_factor=4, mode=mode)[0, 0]).abs().max()
        facts.append(f"{mode} x4: max |zero insertion + kernel - F.interpolate| = {gap:.1e}")
    return facts


def _unpooling_facts(context: LessonContext) -> list[str]:
    example = max_unpooling_example()
    return [
        f"maxima {example.pooled.flatten().tolist()} at flat positions "
        f"{example.indices.flatten().tolist()}",
        f"{int((example.unpooled == 0).sum())} of 16 unpooled values are zero",
    ]


def _conv_matrix_facts(context: LessonContext) -> list[str]:
    example = conv_matrix_example()
    error = (example.transposed - example.reference).abs().max()
    return [
        f"C is {example.matrix.shape[0]}x{example.matrix.shape[1]} with "
        f"{int((example.matrix != 0).sum())} non-zeros",
        f"max |C^T vec(y) - conv_transpose2d(y)| = {error:.1e}",
    ]


def _checkerboard_facts(context: LessonContext) -> list[str]:
    facts = []
    for k, s in CHECKERBOARD_PAIRS:
        example = checkerboard_example(k, s)
        inner = interior(example.overlap, k)
        counts = sorted(set(inner.flatten().tolist()))
        verdict = "checkerboard-free" if example.checkerboard_free else "checkerboard"
        facts.append(f"kernel {k}, stride {s}: interior overlap counts {counts} ({verdict})")
    return facts


def _dense_prediction_facts(context: LessonContext) -> list[str]:
    example = dense_prediction_example()
    gap = (example.classifier_logits - example.fcn_logits).abs().max()
    h, w = example.heat_map.shape[-2:]
    strides = ", ".join(f"{name} {s}" for name, s in fcn_comparison().output_strides.items())
    return [
        f"max |classifier - convolutionalized| on a {TRAIN_SIZE}x{TRAIN_SIZE} image = {gap:.1e}",
        f"heat map on {IMAGE_SIZE}x{IMAGE_SIZE}: {h}x{w} = {IMAGE_SIZE}/32 - {FC6_KERNEL} + 1",
        f"output strides: {strides}",
    ]


SECTIONS: list[Section] = [
    Section(
        "zero-insertion",
        "1. Integer upsampling by zero insertion",
        "Upsampling by 2 is two steps: put a zero between every pair of samples, then convolve "
        "with an interpolation kernel. With the 3x3 bilinear kernel the samples stay where they "
        "were (the kernel's centre is 1) and each inserted zero becomes the average of its two or "
        "four neighbours: the numbers below are the ones you would work out by hand. "
        "<code>fcnlab.ops.zero_insert</code> and <code>upsample(..., method='zero_insert')"
        "</code> compute them.",
        [lambda context: plot_zero_insertion()],
        _zero_insertion_facts,
    ),
    Section(
        "interpolation-kernels",
        "2. Interpolation kernels",
        "Nearest, bilinear and bicubic upsampling are the same recipe with different kernels "
        "(<code>fcnlab.ops.interpolation_kernel</code>): a box, a tent and Keys' cubic with its "
        "negative lobes. Larger factors stretch the same shape over more taps. On a zone plate "
        "nearest shows blocks, bilinear blurs the fine rings and bicubic keeps them sharper.",
        [lambda context: plot_interpolation_kernels(), lambda context: plot_upsampled_images()],
        _interpolation_facts,
    ),
    Section(
        "max-unpooling",
        "3. Max pooling that remembers, and max unpooling",
        "SegNet's decoder upsamples without learning: the encoder's max pooling records where "
        "each maximum came from (<code>return_indices=True</code>) and "
        "<code>MaxUnpool2d</code> puts every maximum back in its place, with zeros elsewhere.",
        [lambda context: plot_max_unpooling()],
        _unpooling_facts,
    ),
    Section(
        "conv-matrix",
        "4. Strided convolution as a matrix",
        "A convolution is linear, so it is a matrix C acting on the flattened image "
        "(<code>fcnlab.ops.conv2d_matrix</code>); each row holds the kernel's taps at the "
        "positions its output pixel reads. The transpose convolution is exactly C<sup>T</sup>: it "
        "maps the small output back to the input's size, and equals "
        "<code>F.conv_transpose2d</code>.",
        [lambda context: plot_conv_matrix()],
        _conv_matrix_facts,
    ),
    Section(
        "checkerboard",
        "5. Transpose convolution and checkerboards",
        "A stride-s transpose convolution stamps one kernel footprint per input pixel, s pixels "
        "apart. When the kernel size is not a multiple of the stride the footprints overlap "
        "unevenly (<code>fcnlab.ops.transpose_conv_overlap</code>), so even a constant input "
        "with a constant kernel gives a checkerboard. The bias is added once per output pixel, "
        "so it shifts the pattern but cannot even it out; kernels 4/2 and 6/3 have no pattern.",
        [lambda context: plot_checkerboard()],
        _checkerboard_facts,
    ),
    Section(
        "dense-prediction",
        "6. From classifier to dense predictor",
        "A classifier's fully connected layers are convolutions whose kernels cover their whole "
        "input (<code>fcnlab.models.classifier.classifier_as_fcn</code>): loaded with the "
        "classifier's own weights, the convolutional network gives the same logits on the "
        "training size and, on a larger image, a coarse map of them, one per window, 32 pixels "
        "apart. FCN-32s upsamples such a map in one step; FCN-8s (<code>build_model('fcn8s')"
        "</code>) adds scores from stride-16 and stride-8 features, so its output can follow "
        "finer detail. <strong>The models here are tiny and untrained</strong> (random weights, "
        "random score layers): the pictures show the mechanics, not learned recognition.",
        [lambda context: plot_dense_prediction(), lambda context: plot_fcn_comparison()],
        _dense_prediction_facts,
    ),
    Section(
        "staged-training",
        "7. Staged training",
        "FCNs are trained in stages: first the new decoder with the pretrained encoder frozen, "
        "then everything fine-tuned at a lower learning rate. The curves below are read from the "
        "run folder's <code>metrics.jsonl</code>; dashed lines mark where a stage begins, and the "
        "list gives the mIoU each stage ended with.",
        [lambda context: plot_run_curves(context.run)],
        lambda context: run_facts(context.run),
        unavailable=lambda context: missing_metrics(context.run),
    ),
    Section(
        "semantic-to-instance",
        "8. From semantic to instance",
        "A class map says what each pixel is, not which object it belongs to: two touching "
        "objects of one class are one region of it. Instance segmentation gives each object "
        "its own mask (the Shapes instance view places such pairs on purpose). CondInst "
        "(<code>build_model('condinst')</code>) keeps one shared map of mask features and "
        "predicts a tiny network per instance, whose kernels are applied at every pixel of "
        "those features together with the pixel's coordinates relative to the instance "
        "(<code>fcnlab.models.instance.dynamic.dynamic_mask_head</code>): the same features, "
        "seen from each object, light up each object. Below, two such heads are written by "
        "hand (not trained): each computes its radius minus the distance from its disk, where "
        "the features say 'disk'. SOLOv2 (<code>build_model('solov2')</code>) predicts "
        "masks per grid cell, so one object gets several; <code>fcnlab.ops.matrix_nms</code> "
        "decays every mask's score at once by its IoU with higher-scored masks of the same "
        "class, instead of greedy NMS's loop. Touching objects barely overlap as masks, so "
        "they keep their scores.",
        [
            lambda context: plot_semantic_vs_instances(),
            lambda context: plot_dynamic_kernel(),
            lambda context: plot_matrix_nms(),
        ],
        lambda context: semantic_instance_facts(),
    ),
]

_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "line-height:1.5;color:#222}img{max-width:100%;height:auto;display:block;margin:1em 0}"
    "code{background:#f2f2f2;padding:0 .2em}li{font-family:monospace}"
)


def _section_html(section: Section, images: list[str], facts: list[str]) -> str:
    parts = [
        f'<section id="{section.slug}">',
        f"<h2>{html.escape(section.title)}</h2>",
        f"<p>{section.paragraph}</p>",
    ]
    parts += [
        f'<img src="{html.escape(name)}" alt="{html.escape(section.title)}">' for name in images
    ]
    if facts:
        parts.append("<p>Checked numbers:</p><ul>")
        parts += [f"<li>{html.escape(fact)}</li>" for fact in facts]
        parts.append("</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def write_lesson(
    out_dir: str | Path,
    run: str | Path | None = None,
    sections: Sequence[Section] | None = None,
    dpi: int = DPI,
) -> Path:
    """Write ``out_dir/index.html`` and one PNG per figure beside it; returns the page's path.

    ``run`` is a training-run directory for the sections that need one; sections that cannot be
    drawn are named at the end of the page with the reason; ``dpi`` sets the PNGs' resolution.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"lesson output {str(out)!r} exists and is not a directory")
    if run is not None and not Path(run).is_dir():
        raise FileNotFoundError(f"run directory {str(run)!r} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    context = LessonContext(Path(run) if run is not None else None)
    body, skipped = [], []
    for section in SECTIONS if sections is None else sections:
        reason = section.unavailable(context)
        if reason is not None:
            skipped.append(f"<li>{html.escape(section.title)}: {html.escape(reason)}</li>")
            continue
        images = []
        for number, figure in enumerate(section.figures, start=1):
            name = f"{section.slug}-{number}.png"
            figure(context).savefig(out / name, dpi=dpi)
            images.append(name)
        body.append(_section_html(section, images, section.facts(context)))
    if skipped:
        body.append('<section id="not-shown"><h2>Not shown</h2><ul>')
        body += skipped
        body.append("</ul></section>")
    page = out / "index.html"
    page.write_text(
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>fcnlab lesson: fully convolutional learning in pictures</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n"
        "<h1>Fully convolutional learning in pictures</h1>\n"
        "<p>Every figure on this page was computed by fcnlab's own functions on real tensors "
        "when the page was written, so a picture cannot disagree with the code.</p>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n",
        encoding="utf-8",
    )
    return page

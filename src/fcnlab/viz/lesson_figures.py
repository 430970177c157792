"""The lesson's figures: each function returns a matplotlib ``Figure`` drawn from lesson numbers.

Figures are built with ``matplotlib.figure.Figure`` directly, not ``pyplot``: no global state, no
GUI backend, safe in scripts and threads; in a notebook a returned figure displays as usual.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.colors as mcolors
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from fcnlab.ops import interpolation_kernel, interpolation_taps
from fcnlab.viz.lesson_numbers import (
    CHECKERBOARD_PAIRS,
    INTERPOLATION_MODES,
    checkerboard_example,
    conv_matrix_example,
    interior,
    max_unpooling_example,
    upsampled_images,
    zero_insertion_example,
    zone_plate,
)

MODE_COLOURS = {"nearest": "tab:green", "bilinear": "tab:blue", "bicubic": "tab:red"}


def _format(value: float) -> str:
    return f"{value:g}" if abs(value - round(value, 2)) < 1e-9 else f"{value:.2f}"


def draw_grid(
    ax: Axes,
    values: torch.Tensor,
    title: str,
    cmap: str = "Blues",
    numbers: bool = True,
    fontsize: float = 10,
    vmin: float | None = None,
    vmax: float | None = None,
    highlight: torch.Tensor | None = None,
) -> None:
    """Draw a 2-D tensor as coloured cells with its values printed in them.

    ``highlight`` is a boolean mask of the same shape whose cells get a thick red frame.
    """
    data = values.detach().double().cpu().numpy()
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax)
    if numbers:
        norm, colours = image.norm, image.get_cmap()
        for (row, col), value in np.ndenumerate(data):
            red, green, blue, _ = colours(norm(value))
            # Relative luminance: white text only where the cell itself is dark.
            dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.5
            ax.text(
                col,
                row,
                _format(float(value)),
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if dark else "black",
            )
    if highlight is not None:
        for row, col in highlight.nonzero().tolist():
            ax.add_patch(
                Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5)
            )
    ax.set_xticks(np.arange(-0.5, data.shape[1], 1), minor=True)
    ax.set_yticks(np.arange(-0.5, data.shape[0], 1), minor=True)
    ax.grid(which="minor", color="0.75", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_title(title, fontsize=11)


def plot_zero_insertion(size: int = 4) -> Figure:
    """Section 1: the grid 1..size^2, its zero-inserted version, the 3x3 tent and the result."""
    example = zero_insertion_example(size)
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    axes = fig.subplots(1, 4, width_ratios=[size, 2 * size, 3, 2 * size - 1])
    scale = {"vmin": 0.0, "vmax": float(size * size)}
    draw_grid(axes[0], example.image, f"input {size}x{size}", fontsize=12, **scale)
    n = 2 * size
    draw_grid(
        axes[1],
        example.zero_inserted,
        f"zero_insert(x, 2): {n}x{n}\n(hatched: beyond the last sample)",
        fontsize=9,
        highlight=example.zero_inserted != 0,
        **scale,
    )
    for corner, width, height in (((-0.5, n - 1.5), n, 1), ((n - 1.5, -0.5), 1, n)):
        axes[1].add_patch(Rectangle(corner, width, height, fill=False, hatch="//", color="0.6"))
    draw_grid(axes[2], example.kernel, "3x3 bilinear kernel", cmap="Oranges", fontsize=11)
    m = n - 1
    draw_grid(
        axes[3],
        example.result,
        f"convolved: {m}x{m}\n(= bilinear, align_corners=True)",
        fontsize=9,
        **scale,
    )
    fig.suptitle("Upsampling x2 = insert zeros, then convolve with the bilinear kernel")
    return fig


def plot_interpolation_kernels(factors: Sequence[int] = (2, 4)) -> Figure:
    """Section 2a: nearest, bilinear and bicubic filters as 1-D taps and as 2-D heat maps."""
    fig = Figure(figsize=(15, 3.4 * len(factors)), layout="constrained")
    axes = fig.subplots(
        len(factors),
        1 + len(INTERPOLATION_MODES),
        squeeze=False,
        width_ratios=[1.6] + [1] * len(INTERPOLATION_MODES),
    )
    for row, factor in zip(axes, factors, strict=True):
        for mode in INTERPOLATION_MODES:
            taps = interpolation_taps(mode, factor).numpy()
            # Offsets from the kernel centre, in output pixels: the shapes side by side.
            offsets = np.arange(len(taps)) - (len(taps) - 1) / 2
            row[0].plot(offsets, taps, "o-", color=MODE_COLOURS[mode], label=mode)
        row[0].axhline(0, color="0.5", linewidth=0.8)
        row[0].set_xlabel("tap offset from the kernel centre (output pixels)")
        row[0].set_title(f"1-D taps, factor {factor}")
        row[0].legend(fontsize=9)
        for ax, mode in zip(row[1:], INTERPOLATION_MODES, strict=True):
            kernel = interpolation_kernel(mode, factor)
            limit = float(kernel.abs().max())
            image = ax.imshow(kernel.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"{mode} x{factor}: {kernel.shape[0]}x{kernel.shape[1]}")
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle("Interpolation kernels: the filter applied after zero insertion")
    return fig


def plot_upsampled_images(size: int = 32, factor: int = 4) -> Figure:
    """Section 2b: a zone plate upsampled by ``factor`` with each mode, side by side."""
    image = zone_plate(size)
    results = upsampled_images(image, factor)
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    axes = fig.subplots(1, 1 + len(results))
    panels = [(f"input {size}x{size}", image)] + [
        (f"{mode} x{factor}: {size * factor}x{size * factor}", out) for mode, out in results.items()
    ]
    for ax, (title, data) in zip(axes, panels, strict=True):
        # Pixels are shown as blocks (no display smoothing) so only the op's own smoothing shows.
        ax.imshow(data.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"The same zone plate upsampled x{factor} (zero insertion + each kernel)")
    return fig


def plot_max_unpooling() -> Figure:
    """Section 3: 2x2 max pooling with its remembered positions, and max unpooling."""
    example = max_unpooling_example()
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 4, width_ratios=[4, 2, 2, 4])
    winners = example.unpooled != 0
    draw_grid(axes[0], example.image, "input 4x4, maxima framed", fontsize=13, highlight=winners)
    draw_grid(axes[1], example.pooled, "max pooled 2x2", fontsize=13)
    draw_grid(axes[2], example.indices, "indices (flat position)", cmap="Purples", fontsize=13)
    draw_grid(axes[3], example.unpooled, "max unpooled 4x4", fontsize=13, highlight=winners)
    fig.suptitle("Max pooling remembers where each maximum was; unpooling puts it back")
    return fig


def plot_conv_matrix() -> Figure:
    """Section 4: the matrix C of a 3x3 stride-2 convolution, C^T, and C^T y vs the op."""
    example = conv_matrix_example()
    palette = ["white", *list(mcolors.TABLEAU_COLORS.values())[:9]]
    cmap = mcolors.ListedColormap(palette)
    fig = Figure(figsize=(15, 6.5), layout="constrained")
    grid = fig.add_gridspec(2, 4, width_ratios=[16, 4, 4, 4], height_ratios=[1, 1])
    ax_c = fig.add_subplot(grid[0, 0])
    ax_ct = fig.add_subplot(grid[:, 1])
    for ax, taps, name in ((ax_c, example.taps, "C"), (ax_ct, example.taps.T, "C^T")):
        ax.imshow(taps.numpy(), cmap=cmap, vmin=-0.5, vmax=9.5)
        for (row, col), tap in np.ndenumerate(taps.numpy()):
            if tap:
                ax.text(col, row, f"w{tap}", ha="center", va="center", fontsize=8)
        rows, cols = taps.shape
        ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
        ax.grid(which="minor", color="0.8", linewidth=0.5)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(f"{name}: {rows}x{cols}, non-zeros coloured by tap")
    ax_c.set_xlabel("input pixel (row-major)")
    ax_c.set_ylabel("output pixel")
    draw_grid(
        fig.add_subplot(grid[1, 0]),
        example.weight,
        "kernel taps w1..w9",
        cmap=cmap,
        vmin=-0.5,
        vmax=9.5,
    )
    draw_grid(fig.add_subplot(grid[0, 2]), example.y, "y, the output-sized input", cmap="Greens")
    error = float((example.transposed - example.reference).abs().max())
    draw_grid(fig.add_subplot(grid[0, 3]), example.transposed, "C^T vec(y), reshaped")
    draw_grid(
        fig.add_subplot(grid[1, 3]),
        example.reference,
        f"conv_transpose2d(y)\nmax difference {error:.1e}",
    )
    note = fig.add_subplot(grid[1, 2])
    note.axis("off")
    note.text(
        0.5,
        0.5,
        f"C^T vec(y)\n==\nconv_transpose2d(\n  y, w,\n  stride={example.stride},\n"
        f"  padding={example.padding},\n  output_padding={example.output_padding})",
        ha="center",
        va="center",
        fontsize=11,
        family="monospace",
    )
    rows, cols = example.matrix.shape
    side = example.transposed.shape[0]
    fig.suptitle(
        f"A 3x3 convolution, stride {example.stride}, padding {example.padding}, on a "
        f"{side}x{side} input is a {rows}x{cols} matrix; transpose convolution is its transpose"
    )
    return fig


def plot_checkerboard(
    pairs: Sequence[tuple[int, int]] = CHECKERBOARD_PAIRS, input_size: int = 4
) -> Figure:
    """Section 5: overlap counts and constant-input outputs for (kernel, stride) pairs."""
    examples = [checkerboard_example(k, s, input_size) for k, s in pairs]
    fig = Figure(figsize=(4 * len(pairs), 10.5), layout="constrained")
    axes = fig.subplots(3, len(pairs), squeeze=False, height_ratios=[1.2, 1, 0.7])
    top = max(float(e.output.max()) for e in examples)
    for column, example in zip(axes.T, examples, strict=True):
        k, s = example.kernel_size, example.stride
        inner = interior(example.overlap, k)
        verdict = "even" if example.checkerboard_free else "checkerboard"
        draw_grid(
            column[0],
            example.overlap,
            f"k={k}, s={s}: overlap counts\ninterior "
            f"{int(inner.min())}..{int(inner.max())} ({verdict})",
            cmap="viridis",
            fontsize=8,
            vmin=0,
        )
        margin = k - 1
        size = example.overlap.shape[0] - 2 * margin
        column[0].add_patch(
            Rectangle(
                (margin - 0.5, margin - 0.5),
                size,
                size,
                fill=False,
                edgecolor="red",
                linewidth=1.5,
                linestyle="--",
            )
        )
        shown = column[1].imshow(example.output.numpy(), cmap="gray", vmin=0, vmax=top)
        fig.colorbar(shown, ax=column[1], shrink=0.8)
        column[1].set_title(f"output on a constant input\n(constant kernel, bias {example.bias})")
        column[1].set_xticks([])
        column[1].set_yticks([])
        middle = example.output.shape[0] // 2
        for bias, style in ((0.0, "--"), (example.bias, "-")):
            profile = example.output[middle] - example.bias + bias
            column[2].plot(profile.numpy(), style, marker=".", label=f"bias {bias}")
        column[2].set_title("middle row")
        column[2].set_ylim(0, top * 1.1)
        column[2].legend(fontsize=8, loc="lower center")
    fig.suptitle(
        "Transpose convolution: uneven overlap makes the checkerboard; a kernel that is "
        "a multiple of the stride does not; the bias only shifts it"
    )
    return fig

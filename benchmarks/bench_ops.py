"""Upsampling speed: fcnlab's paths against F.interpolate, transpose convolution and a plain copy.

Prints one markdown table of median milliseconds and the ratio to ``F.interpolate`` for the same
mode and factor, all measured in this run on this machine::

    python benchmarks/bench_ops.py               # (4, 21, 256, 256), x2 and x8
    python benchmarks/bench_ops.py --quick       # small tensor, a smoke run
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from harness import median_ms, paired_median_ms
from torch import nn

from fcnlab.nn import LearnedUpsample
from fcnlab.ops import upsample


def rows_for_factor(
    x: torch.Tensor, factor: int, repeats: int, device: torch.device
) -> list[tuple[str, str, float, float]]:
    """(path, mode, ms, ratio to F.interpolate) for one factor."""
    rows = []
    with torch.no_grad():
        for mode in ("nearest", "bilinear", "bicubic"):

            def interpolate(m: str = mode) -> torch.Tensor:
                return F.interpolate(x, scale_factor=factor, mode=m)

            reference, fast = paired_median_ms(
                interpolate, lambda m=mode: upsample(x, factor, m), repeats, device
            )
            rows.append(("F.interpolate", mode, reference, 1.0))
            rows.append(("upsample(method='fast')", mode, fast, fast / reference))
            ms = median_ms(
                lambda m=mode: upsample(x, factor, m, method="zero_insert"), repeats, device
            )
            rows.append(("upsample(method='zero_insert')", mode, ms, ms / reference))
        bilinear = next(ms for path, mode, ms, _ in rows if mode == "bilinear")
        channels = x.shape[1]
        deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, factor, factor // 2).to(device)
        learned = LearnedUpsample(channels, channels, factor).to(device)
        out = F.interpolate(x, scale_factor=factor, mode="bilinear")
        for path, fn in (
            ("nn.ConvTranspose2d(k=2f, s=f)", lambda: deconv(x)),
            ("LearnedUpsample(k=2f)", lambda: learned(x)),
            ("copy of the output (write bound)", lambda: out.clone()),
        ):
            ms = median_ms(fn, repeats, device)
            rows.append((path, "bilinear" if "copy" not in path else "-", ms, ms / bilinear))
    return rows


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="(1, 21, 64, 64), one repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--factors", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    shape = (1, 21, 64, 64) if args.quick else (4, 21, 256, 256)
    repeats = 1 if args.quick else args.repeats
    x = torch.randn(*shape, device=device)
    print(
        f"input {tuple(shape)} float32 on {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {repeats}"
    )
    print()
    print("| factor | path | mode | median ms | ratio to F.interpolate |")
    print("|---:|---|---|---:|---:|")
    for factor in args.factors:
        for path, mode, ms, ratio in rows_for_factor(x, factor, repeats, device):
            print(f"| x{factor} | {path} | {mode} | {ms:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()

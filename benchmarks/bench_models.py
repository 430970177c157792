"""Model speed and memory: fcnlab's architectures against the same layers written plainly.

For each model at (1, 3, S, S): eval-mode forward time, train-mode forward+backward time,
parameters and peak memory, for fcnlab's model (eager, channels_last, ``torch.compile``) and a
hand-written plain PyTorch module with identical layers (nn.Sequential blocks, nn.MaxPool2d with
indices, nn.MaxUnpool2d, nn.ConvTranspose2d). The plain module gets fcnlab's weights copied by
order, and the outputs are compared ("same output" column), so both compute the same function;
FCN's plain upsampling zero-pads where fcnlab's replicates the border, so only its layers match.

Each row runs in a fresh process (with ``--quick``, all in this one) and is warmed up first;
peak memory is the growth of the resident set during the timed runs (CPU; the peak RSS is reset
through /proc/self/clear_refs) or of ``torch.cuda.max_memory_allocated`` (CUDA)::

    python benchmarks/bench_models.py                 # 512x512, median of 3, every variant
    python benchmarks/bench_models.py --quick         # 64x64, width 1/8, no compile: smoke run
    python benchmarks/bench_models.py --models unet --size 256 --variants fcnlab plain
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import sys
from collections.abc import Sequence

import torch
from harness import median_ms, reset_peak_rss, run_child, status_bytes
from torch import nn

from fcnlab.models import build_model

MODELS = ("fcn32s", "fcn16s", "fcn8s", "segnet", "deconvnet", "unet")
VARIANTS = ("plain", "fcnlab", "channels_last", "compile")
NUM_CLASSES = 21
VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def scaled(channels: int, width: float) -> int:
    """Channel count of a width-scaled variant (same rounding as fcnlab's encoders)."""
    return max(1, round(channels * width))


def conv_bn_relu(cin: int, cout: int, batch_norm: bool = True, conv: type = nn.Conv2d) -> list:
    """[conv 3x3, (BN), ReLU] as a list of layers."""
    norm = [nn.BatchNorm2d(cout)] if batch_norm else []
    return [conv(cin, cout, 3, padding=1), *norm, nn.ReLU(inplace=True)]


def vgg_stages(width: float, batch_norm: bool) -> tuple[nn.ModuleList, list[list[int]]]:
    """VGG16's five conv stages as nn.Sequential blocks, and their (scaled) channels."""
    stages, channels, previous = nn.ModuleList(), [], 3
    for stage in VGG16:
        layers, sizes = [], []
        for c in stage:
            c = scaled(c, width)
            layers += conv_bn_relu(previous, c, batch_norm)
            sizes.append(previous)
            previous = c
        stages.append(nn.Sequential(*layers))
        channels.append([*sizes, previous])
    return stages, channels


class PlainUnpoolingNet(nn.Module):
    """SegNet (``fc=False``) or DeconvNet (``fc=True``) written out with torch.nn modules."""

    def __init__(self, num_classes: int, width: float, fc: bool) -> None:
        super().__init__()
        self.stages, channels = vgg_stages(width, batch_norm=True)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        top = channels[-1][-1]
        hidden = scaled(4096, width)
        self.fc = (
            nn.Sequential(
                nn.Conv2d(top, hidden, 7, padding=3),
                nn.ReLU(inplace=True),
                nn.Dropout(),
                nn.Conv2d(hidden, hidden, 1),
                nn.ReLU(inplace=True),
                nn.Dropout(),
                nn.ConvTranspose2d(hidden, top, 7, padding=3),
                nn.BatchNorm2d(top),
                nn.ReLU(inplace=True),
            )
            if fc
            else nn.Identity()
        )
        layer = nn.ConvTranspose2d if fc else nn.Conv2d
        self.decoder = nn.ModuleList()
        for depth, sizes in reversed(list(enumerate(channels))):
            pairs = list(zip(sizes[1:], sizes[:-1], strict=True))[::-1]
            if depth == 0:
                pairs = pairs[:-1] + ([(sizes[1], sizes[1])] if fc else [])
            self.decoder.append(
                nn.Sequential(*[m for a, b in pairs for m in conv_bn_relu(a, b, conv=layer)])
            )
        first = channels[0][1]
        self.head = nn.Conv2d(first, num_classes, 1 if fc else 3, padding=0 if fc else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saved = []
        for stage in self.stages:
            x = stage(x)
            size = x.shape[-2:]
            x, indices = self.pool(x)
            saved.append((indices, size))
        x = self.fc(x)
        for stage, (indices, size) in zip(self.decoder, reversed(saved), strict=True):
            x = stage(self.unpool(x, indices, output_size=size))
        return self.head(x)


def double_conv(cin: int, cout: int) -> nn.Sequential:
    """U-Net's two conv (no bias) + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PlainUNet(nn.Module):
    """The paper's U-Net (padded, batch norm, 2x2 up-convolutions), as commonly hand-written."""

    def __init__(self, num_classes: int, width: float) -> None:
        super().__init__()
        channels = [scaled(64 * 2**i, width) for i in range(5)]
        self.down = nn.ModuleList(
            [double_conv(3, channels[0])]
            + [
                nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), double_conv(a, b))
                for a, b in itertools.pairwise(channels)
            ]
        )
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "up": nn.ConvTranspose2d(deep, skip, 2, stride=2),
                    "conv": double_conv(2 * skip, skip),
                }
            )
            for deep, skip in zip(channels[:0:-1], channels[-2::-1], strict=True)
        )
        self.head = nn.Conv2d(channels[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        for block, skip in zip(self.blocks, skips[-2::-1], strict=True):
            x = block["up"](x)[..., : skip.shape[-2], : skip.shape[-1]]
            x = block["conv"](torch.cat([skip, x], dim=1))
        return self.head(x)


class PlainFCN(nn.Module):
    """FCN-32s/16s/8s on VGG16 with fc6/fc7 and plain zero-padded transpose convolutions."""

    def __init__(self, num_classes: int, width: float, skips: Sequence[int]) -> None:
        super().__init__()
        self.stages, channels = vgg_stages(width, batch_norm=False)
        self.pool = nn.MaxPool2d(2, 2)
        top, hidden = channels[-1][-1], scaled(4096, width)
        self.fc = nn.Sequential(
            nn.Conv2d(top, hidden, 7, padding=3),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Dropout(),
        )
        self.score = nn.Conv2d(hidden, num_classes, 1)
        self.skip_stages = [{16: 3, 8: 2}[s] for s in skips]
        self.skip_scores = nn.ModuleList(
            nn.Conv2d(channels[i][-1], num_classes, 1) for i in self.skip_stages
        )
        self.upsamples = nn.ModuleList(
            nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False) for _ in skips
        )
        f = 32 // 2 ** len(skips)
        self.final = nn.ConvTranspose2d(num_classes, num_classes, 2 * f, f, f // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for stage in self.stages:
            x = self.pool(stage(x))
            pooled.append(x)
        score = self.score(self.fc(x))
        for stage, skip_score, up in zip(
            self.skip_stages, self.skip_scores, self.upsamples, strict=True
        ):
            score = up(score) + skip_score(pooled[stage])
        return self.final(score)


def plain_model(name: str, width: float) -> nn.Module:
    """The hand-written reference for fcnlab model ``name``."""
    if name.startswith("fcn"):
        return PlainFCN(NUM_CLASSES, width, {"fcn32s": (), "fcn16s": (16,), "fcn8s": (16, 8)}[name])
    if name == "unet":
        return PlainUNet(NUM_CLASSES, width)
    return PlainUnpoolingNet(NUM_CLASSES, width, fc=name == "deconvnet")


def fcnlab_model(name: str, width: float) -> nn.Module:
    """fcnlab's ``build_model(name)`` at ``width`` (encoder channel multiplier)."""
    return build_model(name, NUM_CLASSES, encoder_options={"width": width})


def copy_by_order(source: nn.Module, target: nn.Module) -> bool:
    """Copy ``source``'s parameters and buffers into ``target`` in registration order.

    Returns False, copying nothing, when the two do not have the same tensor shapes in order.
    """
    pairs = [
        (list(source.parameters()), list(target.parameters())),
        (list(source.buffers()), list(target.buffers())),
    ]
    if any([a.shape for a in src] != [b.shape for b in dst] for src, dst in pairs):
        return False
    with torch.no_grad():
        for src, dst in pairs:
            for a, b in zip(src, dst, strict=True):
                b.copy_(a)
    return True


def measure(name: str, variant: str, size: int, width: float, repeats: int, device: str) -> dict:
    """One row: times, parameters, peak memory (and the output check for ``plain``)."""
    torch.manual_seed(0)
    dev = torch.device(device)
    model = fcnlab_model(name, width)
    same = None
    if variant == "plain":
        reference = plain_model(name, width)
        if copy_by_order(model, reference) and not name.startswith("fcn"):
            probe = torch.randn(1, 3, 67, 45)
            with torch.no_grad():
                same = torch.allclose(model.eval()(probe), reference.eval()(probe), atol=1e-4)
        model = reference
    model = model.to(dev)
    x = torch.randn(1, 3, size, size, device=dev)
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    run = torch.compile(model) if variant == "compile" else model

    def forward() -> None:
        with torch.no_grad():
            run(x)

    def forward_backward() -> None:
        run(x).mean().backward()
        model.zero_grad(set_to_none=True)

    # Warm up first (one-time allocations, compilation), so the peak is the steady state's.
    model.eval()
    forward()
    model.train()
    forward_backward()
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = reset_peak_rss()
    model.eval()
    fwd = median_ms(forward, repeats, dev)
    model.train()
    fwd_bwd = median_ms(forward_backward, repeats, dev)
    peak = (
        torch.cuda.max_memory_allocated() if dev.type == "cuda" else status_bytes("VmHWM:")
    ) - base
    return {"params": params, "fwd": fwd, "fwd_bwd": fwd_bwd, "peak": peak, "same": same}


def run_row(args: argparse.Namespace, name: str, variant: str) -> dict:
    """``measure`` in a fresh interpreter, so peak memory and compile caches start clean.

    ``--quick`` measures in this process instead: a smoke run, its memory column approximate.
    """
    if args.quick:
        return measure(name, variant, args.size, args.width, args.repeats, args.device)
    command = [
        sys.executable,
        __file__,
        "--child",
        name,
        variant,
        "--size",
        str(args.size),
        "--width",
        str(args.width),
        "--repeats",
        str(args.repeats),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
    ]
    return run_child(command)


def format_row(name: str, variant: str, row: dict, plain: dict | None) -> str:
    """One markdown row; the ratios compare with the plain model's row (``plain``)."""
    if "error" in row:
        return f"| {name} | {variant} | | | | | error: {row['error']} |"
    if variant == "plain":
        note = {True: "same output", False: "OUTPUT DIFFERS", None: "same layers"}[row["same"]]
    elif plain is not None and "error" not in plain:
        fwd, both = row["fwd"] / plain["fwd"], row["fwd_bwd"] / plain["fwd_bwd"]
        note = f"fwd x{fwd:.2f}, fwd+bwd x{both:.2f}"
    else:
        note = ""
    return (
        f"| {name} | {variant} | {row['params'] / 1e6:.2f} | {row['fwd']:.1f} | "
        f"{row['fwd_bwd']:.1f} | {row['peak'] / 2**20:.0f} | {note} |"
    )


def main() -> None:
    """Parse arguments, run every (model, variant) row, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="64x64, width 1/8, 1 repeat, no compile, one process"
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--width", type=float, default=1.0, help="encoder channel multiplier")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(*args.child, args.size, args.width, args.repeats, args.device)))
        return
    if args.quick:
        args.size, args.width, args.repeats = 64, 0.125, 1
        args.variants = [v for v in args.variants if v != "compile"]
    print(
        f"input (1, 3, {args.size}, {args.size}) float32 on {args.device}, width {args.width}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print()
    print("| model | variant | params (M) | eval fwd ms | fwd+bwd ms | peak MB | vs plain |")
    print("|---|---|---:|---:|---:|---:|---|", flush=True)
    for name in args.models:
        plain = None
        for variant in args.variants:
            row = run_row(args, name, variant)
            plain = row if variant == "plain" else plain
            print(format_row(name, variant, row, plain), flush=True)


if __name__ == "__main__":
    main()

"""Detection speed: CenterNet and FCOS inference with decoding, and NMS against a plain loop.

Prints one markdown table, all measured in this run on this machine: images/s of eval-mode
``model(x)`` + ``model.decode`` on (1, 3, S, S) inputs, and the time of class-wise NMS on 10,000
boxes for ``fcnlab.ops.batched_nms``, a plain-PyTorch greedy loop (one box per iteration, the
coordinate-offset trick for classes) and, where torchvision happens to be installed,
``torchvision.ops.batched_nms``. Boxes are uniform over a 512 x 512 image, or clustered (100
objects, 100 jittered copies each, like a detector's raw output); every implementation's kept
set is checked against the loop's. With ``--onnx``, each detector is also exported
(``fcnlab export --format onnx``: its raw head outputs) and forward + decode is timed on the
CPU with onnxruntime against eager PyTorch, called alternately on the same input with the same
thresholds (0.05, top 100); the note counts the detections both find alike.

Where torchvision is installed (the peers' environment, ``../shared/peers``), FCOS-R50 is also
timed against torchvision's ``fcos_resnet50_fpn`` (80 classes, ``min_size = max_size = S``, so
its transform keeps the input's size), both untrained, called alternately on the same input with
the same decoding (top 1000 per level, NMS at 0.6, top 100): at score threshold 0.05, where an
untrained model gives every level its 1000 candidates (the stress case), and at the threshold
that lets about 100 (location, class) pairs through (the realistic case; untrained models score
differently, so each model gets its own threshold and the note gives both). Forward + decode
rows, then decoding alone on each model's own head outputs, for the image and for a batch of 8
copies of it::

    python benchmarks/bench_detection.py             # 512x512, default encoders, median of 3
    python benchmarks/bench_detection.py --quick     # 128x128, narrow DarkNet-53, smoke run
    python benchmarks/bench_detection.py --onnx --size 256 --device cpu   # + onnxruntime rows
    PYTHONPATH=src /tmp/peers/bin/python benchmarks/bench_detection.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from harness import median_ms, paired_median_ms

from fcnlab.inference import ModelMetadata
from fcnlab.inference.metadata import default_palette
from fcnlab.models import build_model
from fcnlab.ops import batched_nms, box_iou


def loop_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Greedy NMS as usually written in PyTorch: keep the best box, drop what it overlaps."""
    offset = labels.to(boxes) * (boxes.max() - boxes.min() + 1)
    shifted = boxes + offset[:, None]
    order = scores.argsort(descending=True, stable=True)
    keep = []
    while order.numel():
        best = order[0]
        keep.append(best)
        overlap = box_iou(shifted[best : best + 1], shifted[order[1:]])[0]
        order = order[1:][overlap <= iou_threshold]
    return torch.stack(keep) if keep else order


def nms_boxes(count: int, clustered: bool, classes: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(boxes, scores, labels): uniform boxes, or jittered copies of count // 100 objects."""
    g = torch.Generator().manual_seed(seed)
    if clustered:
        objects = count // 100
        centre = torch.rand(objects, 2, generator=g) * 400 + 56
        size = torch.rand(objects, 2, generator=g) * 150 + 16
        base = torch.cat((centre - size / 2, centre + size / 2), dim=1).repeat_interleave(100, 0)
        jitter = (
            torch.randn(len(base), 4, generator=g)
            * 0.1
            * size.repeat(1, 2).repeat_interleave(100, 0)
        )
        corners = base + jitter
        boxes = torch.cat(
            (corners[:, :2].minimum(corners[:, 2:]), corners[:, :2].maximum(corners[:, 2:])), 1
        )
    else:
        centre = torch.rand(count, 2, generator=g) * 512
        size = torch.rand(count, 2, generator=g) * 100 + 8
        boxes = torch.cat((centre - size / 2, centre + size / 2), dim=1)
    scores = torch.rand(len(boxes), generator=g)
    labels = torch.randint(0, classes, (len(boxes),), generator=g)
    return boxes, scores, labels


def nms_rows(count: int, repeats: int) -> list[tuple[str, str, str, float, str]]:
    """(task, setting, implementation, ms, note) for each box set and NMS implementation."""
    implementations: list[tuple[str, Callable[..., torch.Tensor]]] = [
        ("plain loop", loop_nms),
        ("fcnlab.ops.batched_nms", batched_nms),
    ]
    try:
        from torchvision.ops import batched_nms as tv_batched_nms

        implementations.append(("torchvision.ops.batched_nms", tv_batched_nms))
    except ImportError:
        pass
    rows = []
    for clustered in (False, True):
        for classes in (1, 80):
            boxes, scores, labels = nms_boxes(count, clustered, classes)
            setting = f"{len(boxes)} {'clustered' if clustered else 'uniform'}, {classes} class"
            setting += "es" if classes > 1 else ""
            loop_ms = reference = None
            for name, nms in implementations:
                kept = set(nms(boxes, scores, labels, 0.5).tolist())
                reference = kept if reference is None else reference
                args = (boxes, scores, labels, 0.5)
                ms = median_ms(lambda f=nms, a=args: f(*a), repeats, boxes.device)
                loop_ms = ms if loop_ms is None else loop_ms
                note = f"{loop_ms / ms:.1f}x the loop, {len(kept)} kept"
                note += "" if kept == reference else ", DIFFERS"
                rows.append(("NMS, IoU 0.5", setting, name, ms, note))
    return rows


def model_rows(
    size: int, repeats: int, device: torch.device, encoders: dict[str, tuple[str, dict]]
) -> list[tuple[str, str, str, float, str]]:
    """(task, setting, implementation, ms, images/s) of forward + decode for each detector."""
    rows = []
    x = torch.rand(1, 3, size, size, device=device)
    for name, (encoder, options) in encoders.items():
        model = build_model(name, 80, encoder=encoder, encoder_options=options).to(device).eval()

        def infer(m: torch.nn.Module = model) -> list:
            with torch.no_grad():
                return m.decode(m(x), (size, size))

        ms = median_ms(infer, repeats, device)
        label = encoder + (f" width {options['width']}" if "width" in options else "")
        rows.append((f"{name} forward + decode", f"1x3x{size}x{size}, {label}", "fcnlab", ms,
                     f"{1e3 / ms:.2f} images/s"))  # fmt: skip
    return rows


def common_detections(found: list[dict], reference: list[dict]) -> int:
    """How many of ``reference``'s detections ``found`` has too: the same label, the box to
    1e-3 px, the score to 1e-4."""
    common = 0
    for a, b in zip(found, reference, strict=True):
        match = (
            (a["labels"][:, None] == b["labels"][None])
            & ((a["boxes"][:, None] - b["boxes"][None]).abs().amax(-1) <= 1e-3)
            & ((a["scores"][:, None] - b["scores"][None]).abs() <= 1e-4)
        )
        common += int(match.any(0).sum())
    return common


def onnx_rows(
    size: int, repeats: int, encoders: dict[str, tuple[str, dict]]
) -> list[tuple[str, str, str, float, str]]:
    """(task, setting, implementation, ms, note) of forward + decode on the CPU: eager PyTorch
    and onnxruntime running the detector's ``fcnlab export`` (score threshold 0.05, top 100),
    each with torch's number of threads."""
    from fcnlab.inference.export import export_model
    from fcnlab.tasks.detection.deploy import OnnxDetector

    rows = []
    x = torch.rand(1, 3, size, size)
    for name, (encoder, options) in encoders.items():
        recipe = {"encoder_options": options} if options else {}
        model = build_model(name, 80, encoder=encoder, **recipe).eval()
        metadata = ModelMetadata(
            name=name,
            num_classes=80,
            classes=[str(k) for k in range(80)],
            palette=default_palette(80),
            encoder=encoder,
            options=recipe,
        )
        with tempfile.TemporaryDirectory() as folder:
            path = export_model(model, metadata, "onnx", Path(folder) / f"{name}.onnx")
            exported = OnnxDetector(path, threads=torch.get_num_threads())

        def eager(m: torch.nn.Module = model) -> list:
            with torch.no_grad():
                return m.decode(m(x), (size, size), score_threshold=0.05)

        def onnxruntime(m: OnnxDetector = exported) -> list:
            return m.decode(m(x), (size, size), score_threshold=0.05)

        torch_ms, onnx_ms = paired_median_ms(eager, onnxruntime, repeats, x.device)
        with torch.no_grad():
            expected, found = model(x), exported(x)
        difference = max(float((found[k] - v).abs().max()) for k, v in expected.items())
        reference = eager()
        kept = sum(len(d["scores"]) for d in reference)
        # An untrained model's scores are nearly all equal: an output difference of 1e-6 can
        # swap a tie at the top-k cut, so the note gives the outputs' difference as well.
        common = common_detections(onnxruntime(), reference)
        label = encoder + (f" width {options['width']}" if "width" in options else "")
        setting = f"1x3x{size}x{size}, {label}, CPU"
        task = f"{name} forward + decode"
        rows += [
            (task, setting, "fcnlab, eager PyTorch", torch_ms, f"{1e3 / torch_ms:.2f} images/s"),
            (task, setting, "fcnlab, onnxruntime", onnx_ms,
             f"{torch_ms / onnx_ms:.2f}x eager; {common} of {kept} boxes the same, outputs "
             f"within {difference:.1e}"),
        ]  # fmt: skip
    return rows


def fcos_scores(logits: torch.Tensor, centerness: torch.Tensor) -> torch.Tensor:
    """(L, C) scores of the first image, sqrt(class probability x centre-ness), the formula of
    both fcnlab and torchvision; ``centerness`` (N, L, 1)."""
    return (logits[0].sigmoid() * centerness[0].sigmoid()).sqrt()


def candidates(passing: torch.Tensor, level_sizes: list[int]) -> int:
    """(location, class) pairs that reach NMS, from the (L, C) pairs passing the threshold: at
    most 1000 per level."""
    return sum(min(int(p.sum()), 1000) for p in passing.split(level_sizes))


def torchvision_fcos_rows(
    size: int, repeats: int, device: torch.device
) -> list[tuple[str, str, str, float, str]]:
    """(task, setting, implementation, ms, note): fcnlab's and torchvision's FCOS-R50 called
    alternately, forward + decode and decoding alone, in the stress and the realistic case."""
    try:
        from torchvision.models.detection import fcos_resnet50_fpn
    except ImportError:
        return []
    torch.manual_seed(0)
    ours = build_model("fcos", 80, encoder="resnet50").to(device).eval()
    peer = fcos_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=80, score_thresh=0.05,
        min_size=size, max_size=size,
    ).to(device).eval()  # fmt: skip
    x = torch.rand(1, 3, size, size, device=device)
    with torch.no_grad():
        outputs = ours(x)
        images, _ = peer.transform(list(x))
        features = list(peer.backbone(images.tensors).values())
        head = peer.head(features)
        anchors = peer.anchor_generator(images, features)
    our_levels = torch.bincount(outputs["level"]).tolist()
    peer_levels = [f.shape[-2] * f.shape[-1] for f in features]
    our_scores = fcos_scores(outputs["cls_logits"], outputs["centerness"][..., None])
    peer_scores = fcos_scores(head["cls_logits"], head["bbox_ctrness"])
    # The realistic case passes the 100 best pairs: fcnlab keeps scores from its threshold on,
    # torchvision scores above its threshold.
    our_best, peer_best = (s.flatten().topk(100).values[-1] for s in (our_scores, peer_scores))
    below = float(torch.nextafter(peer_best, torch.zeros_like(peer_best)))
    cases = {"stress": (0.05, 0.05), "realistic": (float(our_best), below)}

    def copies_of(n: int) -> tuple[dict, dict, list, list]:
        """Both models' head outputs for a batch of ``n`` copies of the image."""
        ours_n = {k: v if k in ("points", "level") else torch.cat([v] * n)
                  for k, v in outputs.items()}  # fmt: skip
        peer_n = {k: list(torch.cat([v] * n).split(peer_levels, dim=1)) for k, v in head.items()}
        return ours_n, peer_n, [list(anchors[0].split(peer_levels))] * n, images.image_sizes * n

    rows = []
    for case, (our_threshold, peer_threshold) in cases.items():
        count = (
            candidates(our_scores >= our_threshold, our_levels),
            candidates(peer_scores > peer_threshold, peer_levels),
        )
        setting = (
            f"1x3x{size}x{size}, untrained, {case}: score >= {our_threshold:.4g} / "
            f"> {peer_threshold:.4g}, {count[0]} / {count[1]} candidates"
        )

        def our_model(t: float = our_threshold) -> list:
            with torch.no_grad():
                return ours.decode(ours(x), (size, size), score_threshold=t)

        def peer_model(t: float = peer_threshold) -> list:
            peer.score_thresh = t
            with torch.no_grad():
                return peer(list(x))

        timings = [("FCOS-R50 forward + decode", our_model, peer_model)]
        for n in (1, 8):
            ours_n, peer_n, peer_anchors, image_sizes = copies_of(n)

            def our_decode(t: float = our_threshold, o: dict = ours_n) -> list:
                return ours.decode(o, (size, size), score_threshold=t)

            def peer_decode(
                t: float = peer_threshold, o: dict = peer_n, a: list = peer_anchors,
                s: list = image_sizes,
            ) -> list:  # fmt: skip
                peer.score_thresh = t
                return peer.transform.postprocess(peer.postprocess_detections(o, a, s), s, s)

            timings.append((f"FCOS-R50 decode, batch of {n}", our_decode, peer_decode))
        for task, our_fn, peer_fn in timings:
            our_ms, peer_ms = paired_median_ms(our_fn, peer_fn, repeats, device)
            rows += [
                (task, setting, "fcnlab", our_ms, f"{our_ms / peer_ms:.2f}x torchvision's time"),
                (task, setting, "torchvision", peer_ms, f"{1e3 / peer_ms:.2f} calls/s"),
            ]
    return rows


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128x128, narrow encoders, 2000 boxes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--boxes", type=int, default=10_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--onnx", action="store_true", help="also onnxruntime vs eager PyTorch on the CPU"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.quick:
        size, count, repeats = 128, 2000, 1
        narrow = ("darknet53", {"width": 0.125})
        encoders = {"centernet": narrow, "fcos": narrow}
    else:
        size, count, repeats = args.size, args.boxes, args.repeats
        encoders = {"centernet": ("resnet18", {}), "fcos": ("resnet50", {})}
    print(
        f"torch {torch.__version__} on {device}, {torch.get_num_threads()} threads, "
        f"median of {repeats}; NMS on the CPU"
    )
    print()
    print("| task | setting | implementation | median ms | throughput / speed-up |")
    print("|---|---|---|---:|---|")
    rows = model_rows(size, repeats, device, encoders)
    if not args.quick:
        rows += torchvision_fcos_rows(size, repeats, device)
    if args.onnx:
        rows += onnx_rows(size, repeats, encoders)
    for row in rows + nms_rows(count, repeats):
        task, setting, name, ms, note = row
        print(f"| {task} | {setting} | {name} | {ms:.1f} | {note} |")


if __name__ == "__main__":
    main()

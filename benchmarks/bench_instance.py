"""Instance segmentation speed and memory: CondInst and SOLOv2 forward + post-processing, Matrix
NMS, and the peak memory of evaluating one large image.

Prints one markdown table, all measured in this run on this machine:

- images/s of eval-mode ``model(x)`` + ``model.decode`` + pasting every kept mask at the input's
  size (bool, threshold 0.5) on (1, 3, S, S) inputs, for CondInst and SOLOv2 on ResNet-50 (the
  papers') and on a narrow encoder, untrained; where torchvision happens to be installed (the peers'
  environment, ``../shared/peers/``), its Mask R-CNN R50-FPN in the same rows, at the same score
  threshold, input size (``min_size = max_size = S``, so its transform does not resize) and
  detections per image (100). The default threshold is 0: an untrained model then keeps its top
  100 instances like a trained one on a busy image, so both do the whole post-processing;
- Matrix NMS (``fcnlab.ops.matrix_nms``) against a plain greedy mask-NMS loop written here, on
  500 masks at 128x128 (the stride-4 masks of a 512x512 input; 64x64 with ``--quick``):
  jittered ellipses around 20 objects of 5 classes, as a mask head's candidates crowd before
  NMS; and the masks each keeps: greedy NMS at IoU t against the masks whose linear-kernel decay
  (decayed score / score) is at least 1 - t. The two are the same set whenever no mask overlaps
  both a same-class mask above it and one below it (no chains: every mask that overlaps j from
  above was kept and has compensation 0, so decay_j = 1 - its largest IoU with them), checked
  on a second set of 500 masks built that way; where suppressed masks overlap further masks,
  the compensation makes the sets differ, in either direction (``tests/ops/test_matrix_nms.py``
  works an example by hand). SOLOv2 itself cuts the decayed *score* (at 0.05), which has no
  greedy equivalent;
- the rise of peak resident memory while the instance evaluator processes one 2048x1024 image with
  100 detections (paste, threshold, RLE-encode), pasting 16 masks at a time (fcnlab's) against
  all 100 float masks at full size at once, each measured in a fresh process;
- with ``--onnx``, each model is also exported (``fcnlab export --format onnx``: its raw forward
  outputs) and forward + decode + masks is timed on the CPU with onnxruntime against eager
  PyTorch, called alternately on the same input with the same thresholds and thread count; the
  note counts the instances both find alike and gives the outputs' largest difference::

    python benchmarks/bench_instance.py                        # 512x512, median of 3
    python benchmarks/bench_instance.py --quick                # 128x128, narrow encoder only
    python benchmarks/bench_instance.py --quick --onnx --device cpu   # + onnxruntime rows
    PYTHONPATH=src /tmp/peers/bin/python benchmarks/bench_instance.py   # with Mask R-CNN
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
from fcnlab.models.instance import SOLOv2
from fcnlab.ops.masks import mask_iou, paste_masks
from fcnlab.ops.matrix_nms import matrix_nms
from fcnlab.tasks.instance.evaluate import evaluation_peak_memory

Row = tuple[str, str, str, float, str]


def instance_infer(
    model: torch.nn.Module, x: torch.Tensor, score_threshold: float
) -> Callable[[], int]:
    """One forward + decode + bool masks at the input's size; returns the instances kept.

    SOLOv2's grid cells are also kept from ``score_threshold`` (its ``cell_threshold``, 0.1 by
    default, would keep no cell of an untrained model, whose probabilities start at 0.01)."""
    size = tuple(x.shape[-2:])
    options = {"cell_threshold": score_threshold} if isinstance(model, SOLOv2) else {}

    def infer() -> int:
        with torch.no_grad():
            found = model.decode(
                model(x), size, score_threshold=score_threshold, top_k=100, **options
            )
            masks = [paste_masks(d["masks"], model.mask_stride, size) for d in found]
        return sum(len(m) for m in masks)

    return infer


def maskrcnn_infer(x: torch.Tensor, score_threshold: float) -> Callable[[], int] | None:
    """torchvision's Mask R-CNN R50-FPN (untrained) on ``x`` with bool masks, or None where
    torchvision is not installed."""
    try:
        from torchvision.models.detection import maskrcnn_resnet50_fpn
    except ImportError:
        return None
    size = x.shape[-1]
    model = maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        box_score_thresh=score_threshold,
        box_detections_per_img=100,
        min_size=size,
        max_size=size,
    ).eval()
    images = list(x.to(next(model.parameters()).device))

    def infer() -> int:
        with torch.no_grad():
            found = model(images)
            masks = [d["masks"][:, 0] >= 0.5 for d in found]
        return sum(len(m) for m in masks)

    return infer


def model_rows(
    size: int, repeats: int, device: torch.device, encoders: dict[str, dict], threshold: float
) -> list[Row]:
    """(what, setting, implementation, ms, note) of forward + post-processing per model."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, size, size, device=device)
    rows = []
    for name, title in (("condinst", "CondInst"), ("solov2", "SOLOv2")):
        for encoder, options in encoders.items():
            model = build_model(name, 80, encoder=encoder, encoder_options=options)
            infer = instance_infer(model.to(device).eval(), x, threshold)
            kept = infer()
            ms = median_ms(infer, repeats, device)
            label = encoder + (f" width {options['width']}" if "width" in options else "")
            rows.append((f"{title} forward + decode + masks", f"1x3x{size}x{size}, {label}",
                         "fcnlab", ms, f"{1e3 / ms:.2f} images/s, {kept} instances"))  # fmt: skip
    peer = maskrcnn_infer(x.cpu() if device.type == "cpu" else x, threshold)
    if peer is not None:
        kept = peer()
        ms = median_ms(peer, repeats, device)
        rows.append(("Mask R-CNN forward + post-processing", f"1x3x{size}x{size}, resnet50 FPN",
                     "torchvision", ms, f"{1e3 / ms:.2f} images/s, {kept} instances"))  # fmt: skip
    return rows


def memory_rows(height: int, width: int, detections: int) -> list[Row]:
    """(what, setting, implementation, MiB, note): evaluating one image, chunked and at once."""
    rows = []
    chunked = evaluation_peak_memory(height, width, detections)
    at_once = evaluation_peak_memory(height, width, detections, chunk=detections)
    setting = f"{width}x{height}, {detections} detections"
    rows.append(("evaluation peak memory rise (MiB)", setting, "fcnlab, 16 masks at a time",
                 chunked / 2**20, f"{at_once / chunked:.1f}x less than all at once"))  # fmt: skip
    rows.append(("evaluation peak memory rise (MiB)", setting, "all masks pasted at once",
                 at_once / 2**20, "float masks at full size, then encoded"))  # fmt: skip
    return rows


def candidate_masks(
    count: int, size: int, objects: int, classes: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(masks (count, size, size) bool, labels, scores): jittered ellipses around ``objects``
    random objects, as a mask head's candidates crowd around each object before NMS."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(objects, 2, generator=g) * size * 0.7 + size * 0.15
    radii = torch.rand(objects, 2, generator=g) * size * 0.2 + size * 0.05
    owner = torch.arange(count) % objects
    centres = centre[owner] + torch.randn(count, 2, generator=g) * 0.15 * radii[owner]
    axes = radii[owner] * (1 + 0.15 * torch.randn(count, 2, generator=g)).clamp(min=0.5)
    grid = torch.arange(size) + 0.5
    dy = (grid[None, :, None] - centres[:, 0, None, None]) / axes[:, 0, None, None]
    dx = (grid[None, None, :] - centres[:, 1, None, None]) / axes[:, 1, None, None]
    labels = torch.randint(0, classes, (objects,), generator=g)[owner]
    return dy**2 + dx**2 <= 1, labels, torch.rand(count, generator=g) * 0.9 + 0.1


def unchained_masks(count: int, size: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(masks, labels, scores) with no same-class chain: clusters of one class each, a leader
    rectangle and one to three pairwise disjoint followers (column bands of it, rows jittered)
    scored below it, so no mask overlaps a same-class mask above it and one below it."""
    g = torch.Generator().manual_seed(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high, (1,), generator=g))

    masks, labels, scores = [], [], []
    side = max(size // 10, 4)
    while len(masks) < count:
        height, width = draw(side, 3 * side), draw(side, 3 * side)
        y0, x0 = draw(0, size - height), draw(0, size - width)
        leader = torch.zeros(size, size, dtype=torch.bool)
        leader[y0 : y0 + height, x0 : x0 + width] = True
        top = float(torch.rand(1, generator=g)) * 0.5 + 0.5
        cluster, cluster_scores = [leader], [top]
        followers = draw(1, 4)
        for k in range(followers):
            a = x0 + width * k // followers
            b = x0 + width * (k + 1) // followers
            trim = (b - a) // 3 + 1
            a, b = a + draw(0, trim), b - draw(0, trim)
            shift = height // 4 + 1
            top_row = min(max(y0 + draw(-shift, shift), 0), size - 1)
            bottom_row = min(y0 + height + draw(-shift, shift), size)
            follower = torch.zeros(size, size, dtype=torch.bool)
            follower[top_row : max(bottom_row, top_row + 1), a:b] = True
            cluster.append(follower)
            cluster_scores.append(top * (float(torch.rand(1, generator=g)) * 0.9 + 0.05))
        masks += cluster
        scores += cluster_scores
        labels += [labels[-1] + 1 if labels else 0] * len(cluster)
    return torch.stack(masks[:count]), torch.tensor(labels[:count]), torch.tensor(scores[:count])


def greedy_mask_nms(
    masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Greedy mask NMS as usually written: keep the best remaining mask, drop the same-class
    masks whose IoU with it exceeds ``iou_threshold``, repeat. Indices kept, best first."""
    order = scores.argsort(descending=True, stable=True)
    keep = []
    while order.numel():
        best, rest = order[0], order[1:]
        keep.append(best)
        overlap = mask_iou(masks[best][None], masks[rest])[0]
        order = rest[(labels[rest] != labels[best]) | (overlap <= iou_threshold)]
    return torch.stack(keep) if keep else order


def matrix_nms_rows(
    count: int, size: int, repeats: int, device: torch.device, iou_threshold: float = 0.5
) -> list[Row]:
    """(what, setting, implementation, ms, note): Matrix NMS against the greedy loop, and the
    masks each keeps: greedy at IoU t against a linear-kernel decay of at least 1 - t."""
    objects, classes = 20, 5
    sets = [(f"{count} masks {size}x{size}, {objects} objects, {classes} classes",
             candidate_masks(count, size, objects, classes)),
            (f"{count} masks {size}x{size}, no same-class chains",
             unchained_masks(count, size))]  # fmt: skip
    what = "Matrix NMS vs greedy mask NMS"
    rows: list[Row] = []
    for setting, candidates in sets:
        masks, labels, scores = (t.to(device) for t in candidates)

        def greedy(m: torch.Tensor = masks, c: torch.Tensor = labels, s: torch.Tensor = scores):
            return greedy_mask_nms(m, c, s, iou_threshold)

        def matrix(kernel: str, m=masks, c=labels, s=scores) -> torch.Tensor:
            return matrix_nms(m, c, s, kernel)

        greedy_ms = median_ms(greedy, repeats, device)
        kept = set(greedy().tolist())
        if not rows:  # the times on the crowded candidates, as SOLOv2 meets them
            ms = median_ms(lambda: matrix("gaussian"), repeats, device)
            rows.append((what, setting, f"greedy loop, IoU {iou_threshold}", greedy_ms,
                         f"{len(kept)} kept, one row of mask IoUs each"))  # fmt: skip
            rows.append((what, setting, "fcnlab.ops.matrix_nms, gaussian", ms,
                         f"{greedy_ms / ms:.1f}x the loop"))  # fmt: skip
        ms = median_ms(lambda: matrix("linear"), repeats, device)
        # decay >= 1 - t within float rounding: an IoU of exactly t is kept by both.
        decayed = torch.nonzero(matrix("linear") / scores >= 1 - iou_threshold - 1e-6)
        decayed = set(decayed[:, 0].tolist())
        same = "the same set" if decayed == kept else "DIFFERENT sets"
        rows.append((f"kept: greedy at IoU t = {iou_threshold} vs linear decay >= 1 - t", setting,
                     "fcnlab.ops.matrix_nms, linear", ms,
                     f"{same}: greedy {len(kept)}, decay {len(decayed)}, "
                     f"{len(kept & decayed)} in both; greedy loop {greedy_ms:.1f} ms, "
                     f"{greedy_ms / ms:.1f}x"))  # fmt: skip
    return rows


def common_instances(found: list[dict], reference: list[dict]) -> int:
    """How many of ``reference``'s instances ``found`` has too: the same label, the score to
    1e-4, the mask pasted at the input's size (``"pasted"``) equal to within 0.5 % of its
    pixels."""
    common = 0
    for a, b in zip(found, reference, strict=True):
        for label, score, mask in zip(b["labels"], b["scores"], b["pasted"], strict=True):
            alike = ((a["labels"] == label) & ((a["scores"] - score).abs() <= 1e-4)).nonzero()
            differing = (a["pasted"][alike[:, 0]] != mask).flatten(1).sum(1)
            common += bool((differing <= 0.005 * mask.numel()).any())
    return common


def onnx_rows(size: int, repeats: int, encoders: dict[str, dict], threshold: float) -> list[Row]:
    """(what, setting, implementation, ms, note) of forward + decode + masks on the CPU: eager
    PyTorch and onnxruntime running the model's ``fcnlab export`` (``threshold``, top 100, and
    SOLOv2's cells kept from ``threshold`` as in ``instance_infer``), each with torch's number of
    threads."""
    from fcnlab.inference.export import export_model
    from fcnlab.tasks.deploy import OnnxArchitecture

    torch.manual_seed(0)
    x = torch.rand(1, 3, size, size)
    rows = []
    for name, title in (("condinst", "CondInst"), ("solov2", "SOLOv2")):
        options = {"cell_threshold": threshold} if name == "solov2" else {}
        for encoder, encoder_options in encoders.items():
            recipe = {"encoder_options": encoder_options} if encoder_options else {}
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
                exported = OnnxArchitecture(path, threads=torch.get_num_threads())

            def instances(m: torch.nn.Module, o: dict = options) -> list[dict]:
                """Forward + decode + every kept mask pasted at the input's size."""
                with torch.no_grad():
                    found = m.decode(m(x), (size, size), score_threshold=threshold, **o)
                    for d in found:
                        d["pasted"] = paste_masks(d["masks"], m.mask_stride, (size, size))
                return found

            torch_ms, onnx_ms = paired_median_ms(
                lambda m=model: instances(m), lambda m=exported: instances(m), repeats, x.device
            )
            with torch.no_grad():
                expected, found = model(x), exported(x)
            difference = max(float((found[k] - v).abs().max()) for k, v in expected.items())
            reference = instances(model)
            kept = sum(len(d["scores"]) for d in reference)
            # An untrained model's scores nearly tie: an output difference of 1e-6 can swap
            # tied candidates (SOLOv2's peaks and masks at 0.5 too), so the note gives the
            # outputs' difference as well.
            common = common_instances(instances(exported), reference)
            label = encoder + (
                f" width {encoder_options['width']}" if "width" in encoder_options else ""
            )
            setting = f"1x3x{size}x{size}, {label}, CPU"
            what = f"{title} forward + decode + masks"
            rows += [
                (what, setting, "fcnlab, eager PyTorch", torch_ms,
                 f"{1e3 / torch_ms:.2f} images/s, {kept} instances"),
                (what, setting, "fcnlab, onnxruntime", onnx_ms,
                 f"{torch_ms / onnx_ms:.2f}x eager; {common} of {kept} instances the same, "
                 f"outputs within {difference:.1e}"),
            ]  # fmt: skip
    return rows


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128x128, narrow encoder only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--score-threshold", type=float, default=0.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--onnx", action="store_true", help="also onnxruntime vs eager PyTorch on the CPU"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    narrow = {"vgg16_bn": {"width": 0.125}}
    if args.quick:
        size, repeats, encoders, large = 128, 1, narrow, (256, 512, 20)
    else:
        size, repeats, encoders = args.size, args.repeats, {"resnet50": {}, **narrow}
        large = (1024, 2048, 100)
    print(
        f"torch {torch.__version__} on {device}, {torch.get_num_threads()} threads, "
        f"median of {repeats}, score threshold {args.score_threshold}"
    )
    print()
    print("| what | setting | implementation | median ms / MiB | throughput / note |")
    print("|---|---|---|---:|---|")
    rows = model_rows(size, repeats, device, encoders, args.score_threshold) + memory_rows(*large)
    rows += matrix_nms_rows(500, 64 if args.quick else 128, repeats, device)
    if args.onnx:
        rows += onnx_rows(size, repeats, encoders, args.score_threshold)
    for what, setting, name, value, note in rows:
        print(f"| {what} | {setting} | {name} | {value:.1f} | {note} |")


if __name__ == "__main__":
    main()

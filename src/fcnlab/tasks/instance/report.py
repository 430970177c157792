"""What an instance segmentation evaluation prints: pycocotools' two 12-line summaries (masks and
boxes) and COCO AP per class. Its precision-recall curves are detection's
(:func:`~fcnlab.tasks.detection.report.write_pr_curves`) drawn from the masks' COCOeval."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from fcnlab.tasks.base import per_class_table, scores_table
from fcnlab.tasks.detection.coco_eval import CocoEvaluation
from fcnlab.tasks.instance.evaluate import InstanceEvalResult


def epoch_table(result: InstanceEvalResult, title: str) -> Table:
    """COCO mask AP, AP50, AP75 and box AP in percent."""
    masks, boxes = result.mask_stats, result.box_stats
    return scores_table(
        title,
        [("mask AP", masks["AP"]), ("mask AP50", masks["AP50"]), ("mask AP75", masks["AP75"]),
         ("box AP", boxes["AP"])],
    )  # fmt: skip


def results_table(result: InstanceEvalResult, names: list[str]) -> Table:
    """Mask AP (IoU 0.50:0.95), mask AP50 and box AP per class, then over the classes."""
    columns = ("mask AP", "mask AP50", "box AP")
    per_class = (result.per_class_mask_ap, result.per_class_mask_ap50, result.per_class_box_ap)
    mean = [("mean", [result.mask_stats["AP"], result.mask_stats["AP50"], result.box_stats["AP"]])]
    return per_class_table("COCO AP per class", columns, names, per_class, mean)


def summaries(result: InstanceEvalResult) -> list[Group]:
    """pycocotools' 12-line summaries, headed "mask (segm)" and "box (bbox)" (none for a result
    read back from a record, which keeps no COCOeval)."""
    shown = []
    for label, evaluation in (("mask (segm)", result.mask_coco), ("box (bbox)", result.box_coco)):
        if isinstance(evaluation, CocoEvaluation):
            shown.append(Group(Text(label, style="bold"), Text(evaluation.summary)))
    return shown

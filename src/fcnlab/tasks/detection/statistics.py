"""What ``fcnlab datasets check`` reports of a detection data set: boxes per class."""

from __future__ import annotations

from rich.table import Table

from fcnlab.data import BoxCounter
from fcnlab.data.stats import BoxCounts


def box_counter(dataset: object) -> BoxCounter:
    """A box counter over ``dataset``'s object classes."""
    return BoxCounter(tuple(dataset.classes))  # type: ignore[attr-defined]


def box_table(split: str, counts: BoxCounts) -> Table:
    """Boxes, share, images, crowd and difficult boxes per class for one split."""
    table = Table(title=f"Boxes per class: {split}")
    for column in ("class", "boxes", "share %", "images", "crowd", "difficult"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for c, name in enumerate(counts.classes):
        table.add_row(
            name,
            str(int(counts.boxes[c])),
            f"{100 * float(counts.share[c]):.2f}",
            str(int(counts.images[c])),
            str(int(counts.crowd[c])),
            str(int(counts.difficult[c])),
        )
    table.caption = f"images without boxes: {counts.empty_images} of {counts.total_images}"
    return table

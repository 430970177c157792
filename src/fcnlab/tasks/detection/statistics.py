"""What ``fcnlab datasets check`` reports of a detection data set: boxes per class."""

from __future__ import annotations

from rich.table import Table

from fcnlab.data import BoxCounter
from fcnlab.data.stats import BoxCounts


def box_counter(dataset: object) -> BoxCounter:
    """A box counter over ``dataset``'s object classes."""
    return BoxCounter(tuple(dataset.classes))  # type: ignore[attr-defined]


def box_table(
    split: str, counts: BoxCounts, objects: str = "boxes", difficult: bool = True
) -> Table:
    """Objects (``objects`` names them: boxes, instances), share, images, crowd and (where
    ``difficult``: VOC's boxes) difficult objects per class for one split."""
    columns = ["class", objects, "share %", "images", "crowd"] + ["difficult"] * difficult
    table = Table(title=f"{objects.capitalize()} per class: {split}")
    for column in columns:
        table.add_column(column, justify="left" if column == "class" else "right")
    for c, name in enumerate(counts.classes):
        cells = [
            str(int(counts.boxes[c])),
            f"{100 * float(counts.share[c]):.2f}",
            str(int(counts.images[c])),
            str(int(counts.crowd[c])),
        ]
        table.add_row(name, *cells, *[str(int(counts.difficult[c]))] * difficult)
    table.caption = f"images without {objects}: {counts.empty_images} of {counts.total_images}"
    return table

"""Segmentation data: real on-disk formats, the synthetic ``Shapes`` set, joint transforms."""

from __future__ import annotations

from fcnlab.data.registry import DATASETS, build_dataset, list_datasets

__all__ = ["DATASETS", "build_dataset", "list_datasets"]

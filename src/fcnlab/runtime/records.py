"""JSON records: ``metrics.jsonl`` lines, ``metrics.json`` files and demo summaries."""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` with every float NaN (nested in dicts, lists and tuples) replaced by None.

    ``json.dumps`` would otherwise write the non-standard token ``NaN``.
    """
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def nan_for_none(value: float | None) -> float:
    """The inverse of :func:`json_safe` for one number: None back to NaN."""
    return math.nan if value is None else float(value)

"""Wall-clock timing shared by the benchmark scripts (CUDA work is synchronised around calls)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def timed_ms(fn: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call of ``fn`` in milliseconds."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def median_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn`` in milliseconds after one warm-up call."""
    fn()
    return statistics.median(timed_ms(fn, device) for _ in range(repeats))


def paired_median_ms(
    reference: Callable[[], object],
    candidate: Callable[[], object],
    repeats: int,
    device: torch.device,
) -> tuple[float, float]:
    """Median times of two functions called alternately, so that allocator and cache effects
    (large outputs are fresh memory every call) fall on both alike."""
    reference(), candidate()
    times = [(timed_ms(reference, device), timed_ms(candidate, device)) for _ in range(repeats)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)

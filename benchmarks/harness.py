"""What the benchmark scripts share: wall-clock timing (CUDA synchronised around calls), peak
resident memory on Linux, rows measured in a fresh child interpreter, rounds of such rows in
alternating order, and the rate the engine logs."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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


def status_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory field (e.g. ``"VmHWM:"``) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> int:
    """Reset the peak resident set to the current one (Linux ``clear_refs`` 5) and return it;
    ``ru_maxrss`` cannot serve, as Linux carries it over from the parent process."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return status_bytes("VmRSS:")


def run_child(command: list[str]) -> dict:
    """Run a benchmark row in a fresh interpreter; its last stdout line is the row as JSON, or
    ``{"error": ...}`` with the last line of stderr when it failed."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": last[:100]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_command(
    script: str, child: Sequence[str], args: argparse.Namespace, options: Sequence[str]
) -> list[str]:
    """The command that reruns ``script`` as ``--child *child`` with the same ``options`` (the
    names of valued ``args``)."""
    command = [sys.executable, script, "--child", *child]
    for option in options:
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    return command


def alternating_rounds(
    loops: Sequence[str], rounds: int, run: Callable[[str], dict]
) -> dict[str, list[dict]]:
    """``rounds`` rows of each of ``loops`` from ``run(loop)`` (a fresh interpreter each:
    :func:`run_child`), in the given order in even rounds and reversed in odd ones, so that
    neither a loop's place nor the machine's drift favours one loop. Raises a RuntimeError
    naming the loop whose row is an error."""
    rows: dict[str, list[dict]] = {loop: [] for loop in loops}
    for round_ in range(rounds):
        for loop in loops if round_ % 2 == 0 else loops[::-1]:
            row = run(loop)
            if "error" in row:
                raise RuntimeError(f"{loop}: {row['error']}")
            rows[loop].append(row)
    return rows


def median_range(values: Sequence[float], digits: int = 2) -> str:
    """``"median (min .. max)"`` of ``values``, each with ``digits`` decimals."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f} .. {high:.{digits}f})"


def engine_images_per_s(run_dir: str | Path) -> float:
    """Images/s the engine logged over a run's training steps after its first log window (the
    warm-up): the harmonic mean of the windows' rates, which for windows of equal length is the
    overall rate."""
    from fcnlab.engine import read_metrics

    rates = [r["images_per_s"] for r in read_metrics(run_dir) if r["kind"] == "train"][1:]
    return len(rates) / sum(1 / rate for rate in rates)

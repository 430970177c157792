"""Every check that needs a GPU, in one run: the test suite with CUDA present, the benchmarks on
CUDA and ``fcnlab demo``, each step under its own timeout and all of them under one deadline,
then one summary table (printed last and written to ``OUT/summary.md``).

    bash benchmarks/gpu_check.sh                       # on a GPU machine (see that file)
    python benchmarks/gpu_check.py --quick --out /tmp/gpu_check   # the same steps, small, here

It writes at most eight files to ``--out``: ``summary.md`` (the machine, the step table and
every benchmark's table) and one log per step. A step that fails or runs out of time is
reported as such and the next one runs; the script's exit status is 0 when every step passed.
``--quick`` runs each step at toy size on whatever device there is (a check of the script on a
CPU machine, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
# The goal for the whole script; each step also has its own ceiling.
DEADLINE_S = 470.0
# A step is not started with less than this left before the deadline.
MIN_STEP_S = 5.0
# Outside OUT: the demo's run folder holds more files than may come back.
DEMO_ROOT = Path("/tmp/fcnlab_gpu_check")


@dataclass
class Step:
    """One command of the check: ``name`` (also its log file's name), its arguments after the
    Python interpreter, its time limit, and whether its output holds a table for the summary."""

    name: str
    args: list[str]
    timeout_s: float
    table: bool = True


@dataclass
class Outcome:
    """How a step ended: ``"ok"``, ``"failed (rc N)"``, ``"timeout"`` or ``"skipped"``."""

    step: Step
    result: str
    seconds: float
    figure: str = ""
    output: str = ""
    tables: list[str] = field(default_factory=list)


def steps(quick: bool, device: str) -> list[Step]:
    """The check's steps: full size on a GPU, toy size with ``quick``."""
    workers = str(min(12, max(1, (os.cpu_count() or 2) - 2)))
    if quick:
        suite = ["-m", "pytest", "-q", "-x", "tests/engine/test_loader.py", "tests/ops"]
        train = ["--models", "unet", "--size", "64", "--batch", "4", "--steps", "2",
                 "--warmup", "1", "--width", "0.125", "--pairs", "1"]  # fmt: skip
        detection, instance, demo = (
            ["--quick", "--repeats", "1"],
            ["--quick", "--repeats", "1"],
            ["--quick"],
        )
    else:
        suite = ["-m", "pytest", "-q", "-n", workers, "-p", "xdist"]
        train = ["--models", "unet", "fcn8s", "--size", "256", "--batch", "16", "--steps", "20",
                 "--warmup", "5", "--pairs", "1"]  # fmt: skip
        detection, instance, demo = ["--repeats", "5"], ["--repeats", "3"], []
    train = [str(BENCHMARKS / "bench_train.py"), "--devices", device, "--loops", "plain",
             "engine", *train]  # fmt: skip
    demo = ["-m", "fcnlab", "demo", "--out", str(DEMO_ROOT), *demo]
    return [
        Step("suite", [sys.executable, *suite], 120 if quick else 200, table=False),
        Step("train", [sys.executable, *train], 75),
        Step("train_cudnn_benchmark", [sys.executable, *train, "--cudnn-benchmark"], 75),
        Step(
            "train_bf16_channels_last",
            [sys.executable, *train, "--amp", "bf16", "--channels-last"],
            75,
        ),
        Step("detection", [sys.executable, str(BENCHMARKS / "bench_detection.py"), *detection], 60),
        Step("demo", [sys.executable, *demo], 150, table=False),
        Step("instance", [sys.executable, str(BENCHMARKS / "bench_instance.py"), *instance], 60),
    ]


def run_step(step: Step, out: Path, seconds_left: float) -> Outcome:
    """Run ``step`` from the repository root with at most ``seconds_left``; its whole output
    goes to ``out/NAME.log``."""
    if seconds_left < MIN_STEP_S:
        return Outcome(step, "skipped", 0.0, "the deadline has passed")
    limit = min(step.timeout_s, seconds_left)
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    source = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    start = time.perf_counter()
    try:
        done = subprocess.run(
            step.args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit,
            check=False,
        )  # fmt: skip
        output, result = done.stdout + done.stderr, "ok" if done.returncode == 0 else None
        result = result or f"failed (rc {done.returncode})"
    except subprocess.TimeoutExpired as error:
        output = _text(error.stdout) + _text(error.stderr)
        result = f"timeout ({limit:.0f} s)"
    seconds = time.perf_counter() - start
    (out / f"{step.name}.log").write_text(output)
    outcome = Outcome(step, result, seconds, output=output)
    outcome.tables = markdown_tables(output) if step.table else []
    outcome.figure = headline(step.name, output)
    return outcome


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def markdown_tables(output: str) -> list[str]:
    """The markdown tables in ``output``: runs of lines that start and end with ``|``."""
    tables, current = [], []
    for line in [*output.splitlines(), ""]:
        if line.startswith("|") and line.rstrip().endswith("|"):
            current.append(line.rstrip())
        elif current:
            tables.append("\n".join(current))
            current = []
    return tables


def headline(name: str, output: str) -> str:
    """The one figure of a step worth a column: pytest's tally, the demo's held-out mIoU."""
    if name == "suite":
        tallies = re.findall(r"^=*\s*(\d+ (?:passed|failed).*?) in [\d.]+s", output, re.MULTILINE)
        return tallies[-1].strip(" =") if tallies else ""
    metrics = DEMO_ROOT / "demo" / "metrics.json"
    if name == "demo" and metrics.is_file():
        scores = json.loads(metrics.read_text())
        return f"held-out mIoU {100 * scores['mean_iou']:.1f} (quick: {scores.get('quick')})"
    return ""


def machine() -> str:
    """The card, driver-facing versions and host, for the summary's heading."""
    lines = [f"python {platform.python_version()}, torch {torch.__version__}"]
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        lines.append(
            f"{torch.cuda.get_device_name(0)} ({properties.total_memory / 2**30:.0f} GiB), "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
            f"{torch.cuda.device_count()} GPU(s)"
        )
    else:
        lines.append("no CUDA device: the steps ran on the CPU")
    lines.append(f"{os.cpu_count()} CPU cores, {platform.node()}")
    return "; ".join(lines)


def summary(outcomes: list[Outcome], total_s: float) -> str:
    """The markdown summary: machine, one row per step, then the benchmarks' tables."""
    rows = [
        f"# fcnlab GPU check ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        machine(),
        "",
        "| step | result | seconds | figure |",
        "|---|---|---:|---|",
    ]
    for outcome in outcomes:
        figure = outcome.figure.replace("|", "/")
        name, seconds = outcome.step.name, f"{outcome.seconds:.0f}"
        rows.append(f"| {name} | {outcome.result} | {seconds} | {figure} |")
    rows.append(f"| total | | {total_s:.0f} | |")
    for outcome in outcomes:
        for table in outcome.tables:
            rows += ["", f"## {outcome.step.name}", "", table]
    failures = [o for o in outcomes if o.step.name == "suite" and o.result != "ok"]
    for outcome in failures:
        failed = [line for line in outcome.output.splitlines() if line.startswith("FAILED")]
        rows += ["", "## failed tests", "", *failed[:40]]
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"))
    parser.add_argument("--quick", action="store_true", help="toy sizes: check the script")
    parser.add_argument("--only", nargs="+", help="run only these steps")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = [s for s in steps(args.quick, device) if not args.only or s.name in args.only]
    shutil.rmtree(DEMO_ROOT, ignore_errors=True)
    start = time.perf_counter()
    outcomes = []
    for step in chosen:
        left = DEADLINE_S - (time.perf_counter() - start)
        outcome = run_step(step, out, left)
        outcomes.append(outcome)
        print(f"{step.name}: {outcome.result} in {outcome.seconds:.0f} s", flush=True)
    text = summary(outcomes, time.perf_counter() - start)
    (out / "summary.md").write_text(text)
    print(text, flush=True)
    sys.exit(0 if all(o.result == "ok" for o in outcomes) else 1)


if __name__ == "__main__":
    main()

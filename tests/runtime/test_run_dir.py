"""The run folder: a lock that another process really holds keeps a run out, a dead run's lock
is taken over, a folder holding a run is never reused silently, and a resumed run's log is cut
back to its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fcnlab.runtime.checkpoint import atomic_write
from fcnlab.runtime.run_dir import RunFolderError, RunLock, keep_metrics, open_run_dir

HOLD_THE_LOCK = (
    "import sys; from fcnlab.runtime.run_dir import RunLock; RunLock(sys.argv[1]); "
    "print('locked', flush=True); sys.stdin.read()"
)


def holder(run: Path) -> subprocess.Popen[str]:
    """Another process that takes the lock of ``run`` and holds it until its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "locked\n"
    return process


def test_a_lock_held_by_another_process_keeps_a_run_out_until_it_dies(tmp_path: Path) -> None:
    other = holder(tmp_path)
    try:
        with pytest.raises(RunFolderError) as error:
            RunLock(tmp_path)
        assert str(error.value) == (
            f"run folder '{tmp_path}' is in use by process {other.pid} on {os.uname().nodename} "
            f"(lock file '{tmp_path / 'run.lock'}'); wait for that run to end or set output.name "
            "to another folder"
        )
    finally:
        other.send_signal(signal.SIGKILL)  # dies without releasing: its lock file stays
        other.wait()
    notes: list[str] = []
    lock = RunLock(tmp_path, notes.append)
    assert notes == [
        f"took over the lock file '{tmp_path / 'run.lock'}' of process {other.pid}, which is no "
        "longer running"
    ]
    assert (tmp_path / "run.lock").read_text().split()[0] == str(os.getpid())
    lock.release()
    assert not (tmp_path / "run.lock").exists()
    RunLock(tmp_path, notes.append).release()
    assert len(notes) == 1  # a released lock leaves nothing to take over


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model: {}\n")
    (run / "checkpoints" / "last.pt").write_bytes(b"PK")
    (run / "tensorboard").mkdir()
    (run / "overlays.png").write_bytes(b"png")
    with pytest.raises(RunFolderError) as error:
        open_run_dir(run)
    assert str(error.value) == (
        f"run folder '{run}' already holds a run (config.yaml, checkpoints/last.pt); continue it "
        "with --resume, replace it with --overwrite, or set output.name to a new folder"
    )
    assert not (run / "run.lock").exists()
    open_run_dir(run, resume=True, note=pytest.fail).release()
    assert (run / "checkpoints" / "last.pt").exists()

    notes: list[str] = []
    open_run_dir(run, overwrite=True, note=notes.append).release()
    assert notes == [
        "--overwrite: removed the previous run's config.yaml, checkpoints, tensorboard from "
        f"'{run}'"
    ]
    assert sorted(p.name for p in run.iterdir()) == ["overlays.png"]  # not the engine's: kept


def test_temporaries_of_killed_writes_are_removed_when_a_run_starts(tmp_path: Path) -> None:
    run = tmp_path / "run"
    killed = (
        "import os, signal, sys; from fcnlab.runtime.checkpoint import atomic_write; "
        "atomic_write(sys.argv[1], lambda f: (f.write(b'PK half'), f.flush(), "
        "os.kill(os.getpid(), signal.SIGKILL)))"
    )
    target = run / "checkpoints" / "last.pt"
    process = subprocess.run([sys.executable, "-c", killed, str(target)], check=False)
    assert process.returncode == -signal.SIGKILL
    orphans = list(target.parent.iterdir())
    assert [p.name[: len(".last.pt.")] for p in orphans] == [".last.pt."]
    notes: list[str] = []
    open_run_dir(run, note=notes.append).release()  # no checkpoint: not a run yet
    assert notes == [
        f"removed 1 unfinished temporary file(s) of a killed run: checkpoints/{orphans[0].name}"
    ]
    assert list(target.parent.iterdir()) == []


def test_keep_metrics_drops_records_and_keeps_the_order(tmp_path: Path) -> None:
    records = [{"kind": "train", "step": s} for s in (1, 2, 3)] + [{"kind": "eval", "step": 2}]
    atomic_write(
        tmp_path / "metrics.jsonl",
        lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()),
    )
    assert keep_metrics(tmp_path, lambda r: r["step"] <= 2) == 1
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [records[0], records[1], records[3]]
    assert keep_metrics(tmp_path / "absent", lambda r: False) == 0

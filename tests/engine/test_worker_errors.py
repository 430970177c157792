"""An error raised in a DataLoader worker comes back with the worker's own message: PyTorch
re-raises it with the worker's whole traceback as its message (and as a RuntimeError when the
exception cannot be rebuilt from one string), and ``worker_error_message`` undoes that."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch.utils.data import DataLoader, Dataset

from fcnlab.data.io import DataFormatError
from fcnlab.engine.loader import worker_error_message


class Failing(Dataset):
    """One item, whose reading raises ``make()``."""

    def __init__(self, make: type[BaseException] | object) -> None:
        self.make = make

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> object:
        raise self.make()  # type: ignore[operator]


def truncated() -> DataFormatError:
    return DataFormatError(Path("set[v2]/broken[final].jpg"), "cannot read image: truncated")


def chained() -> ValueError:
    try:
        raise ValueError("the inner cause")
    except ValueError as cause:
        error = ValueError("mask 'a.png' is 4x4 but its image is 8x8\nsecond line")
        error.__cause__ = cause
        return error


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (truncated, "set[v2]/broken[final].jpg: cannot read image: truncated"),
        (lambda: KeyError("colour"), "'colour'"),
        (chained, "mask 'a.png' is 4x4 but its image is 8x8\nsecond line"),
        (ZeroDivisionError, "ZeroDivisionError"),
    ],
    ids=["DataFormatError", "KeyError", "chained", "no message"],
)
def test_a_worker_error_reads_as_the_same_error_without_workers(make: object, message: str) -> None:
    with pytest.raises(BaseException) as in_process:
        next(iter(DataLoader(Failing(make), num_workers=0)))
    with pytest.raises(BaseException) as in_worker:
        next(iter(DataLoader(Failing(make), num_workers=1)))
    assert "DataLoader worker process 0" in str(in_worker.value)  # what PyTorch raises
    assert worker_error_message(in_worker.value) == message
    assert worker_error_message(in_process.value) == str(in_process.value)
    if not isinstance(in_process.value, ZeroDivisionError):
        assert str(in_process.value) == message


def test_any_other_error_is_its_own_message() -> None:
    assert worker_error_message(RuntimeError("Caught nothing")) == "Caught nothing"

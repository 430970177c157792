"""``data.cache``: a file-backed data set decoded into memory once, so that no epoch decodes again.

What is kept is what :meth:`~fcnlab.data.base.FileDataset.decode` gives for each sample: the
image's integer pixels (uint8 ``(3, H, W)``, a quarter of the float image) and its checked
annotation (a class map, a target dict with boxes or instance masks), *before* any random
transform. ``dataset[i]`` still scales and transforms every sample afresh, so each epoch's
augmentation is exactly what it is without the cache: the same seeds give the same batches, bit
for bit. What a cache saves is the decoding (PNG/JPEG, polygons, label mapping and checks); what
it costs is one pass over the files before training and the memory.

Layout, after detectron2's serialised ``DatasetFromList``: every sample is pickled into one
contiguous uint8 NumPy buffer, with an array of offsets. DataLoader workers forked after the fill
share its pages; a list of per-sample Python objects would instead be copied page by page into
every worker, as each access writes its objects' reference counts. (Under the ``spawn`` start
method, the default on macOS and Windows, each worker gets its own copy.) Tensors are stored as
NumPy arrays, integer ones in the smallest of uint8, int16 and int32 that holds their values (a
class map: one byte per pixel rather than eight), and come back with their own dtype.

The fill runs in the calling process, decoding in ``threads`` threads (PIL decodes outside the
GIL). Before it starts, the size is estimated from up to :data:`PROBES` samples spread over the
set; a fill whose estimate, plus :data:`MARGIN`, exceeds the memory available
(``MemAvailable`` in ``/proc/meminfo``; not checked where there is none) is refused with
:class:`CacheTooLargeError`, and so is one that outgrows the memory on the way.

Invalid files are met during the fill: without ``skip_invalid`` the first one raises the error
that reading it would raise; with it, each is logged and counted at once, and ``dataset[i]``
skips it as it would without the cache. The files are read once: a file changed on disk after
the fill is not seen until the next run.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import pickle
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnlab.data.base import CHECK_ADVICE, FileDataset
from fcnlab.data.io import DataFormatError

#: How many samples, spread over the data set, the size estimate decodes.
PROBES = 32
#: The share added to the estimate for its error (ultralytics' ``cache="ram"`` adds the same).
MARGIN = 0.1
MEMINFO = Path("/proc/meminfo")
# Integer dtypes a tensor is narrowed to when its values fit, smallest first.
_NARROW = (np.uint8, np.int16, np.int32)


class CacheTooLargeError(MemoryError):
    """The decoded data set would not fit in the memory available."""


class DecodedCache:
    """The decoded samples of a data set in one buffer: ``cache[i]`` is ``dataset.decode(i)``.

    A sample that was invalid when the cache was filled raises its
    :class:`~fcnlab.data.io.DataFormatError` again. ``nbytes`` is the buffer's size, ``images``
    the number of valid samples.
    """

    def __init__(
        self, buffer: np.ndarray, offsets: np.ndarray, invalid: dict[int, DataFormatError]
    ) -> None:
        self.buffer = buffer
        self.offsets = offsets
        # (file, reason) of each invalid sample: a DataFormatError itself does not pickle.
        self.invalid = {index: (error.file, error.reason) for index, error in invalid.items()}

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer."""
        return int(self.buffer.nbytes)

    @property
    def images(self) -> int:
        """The number of valid samples held."""
        return len(self) - len(self.invalid)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        if index in self.invalid:
            raise DataFormatError(*self.invalid[index])
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return pickle.loads(self.buffer[start:end])


def cache_dataset(
    dataset: FileDataset,
    threads: int = 0,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
    copies: int = 1,
) -> DecodedCache:
    """Decode every sample of ``dataset`` into a :class:`DecodedCache`, set it as
    ``dataset.cache`` and return it.

    ``threads`` decode at once (0: in the calling thread); ``progress`` wraps the indices, e.g.
    ``rich.progress.track``; ``copies`` is how many processes of this machine fill a cache of
    their own (the processes of a distributed run), counted in the memory check. Raises
    :class:`CacheTooLargeError` when the cache would not fit and, without
    ``dataset.skip_invalid``, the :class:`~fcnlab.data.io.DataFormatError` of the first invalid
    file.
    """
    count = len(dataset)
    available = available_memory()
    with ThreadPoolExecutor(threads) if threads else contextlib.nullcontext() as pool:

        def encoded(indices: Sequence[int]) -> list[bytes | DataFormatError]:
            if pool is None:
                return [encode_sample(dataset, index) for index in indices]
            return list(pool.map(lambda index: encode_sample(dataset, index), indices))

        probes = sorted({round(i) for i in np.linspace(0, count - 1, min(count, PROBES))})
        ready = dict(zip(probes, encoded(probes), strict=True))
        sizes = [len(entry) for entry in ready.values() if isinstance(entry, bytes)]
        if sizes and available is not None:
            _check_fits(sum(sizes) / len(sizes), count, copies, available, len(sizes))
        buffer, offsets, invalid = bytearray(), [0], {}
        indices = iter(progress(range(count)) if progress is not None else range(count))
        while chunk := list(itertools.islice(indices, max(threads, 1) * 8)):
            missing = [index for index in chunk if index not in ready]
            ready.update(zip(missing, encoded(missing), strict=True))
            for index in chunk:
                entry = ready.pop(index)
                if isinstance(entry, DataFormatError):
                    invalid[index] = _invalid(dataset, entry)
                else:
                    buffer += entry
                offsets.append(len(buffer))
            if available is not None and len(buffer) * copies * (1 + MARGIN) > available:
                done = len(offsets) - 1
                _check_fits(len(buffer) / done, count, copies, available, done)
    array = np.frombuffer(buffer, dtype=np.uint8)
    array.flags.writeable = False
    dataset.cache = DecodedCache(array, np.asarray(offsets, dtype=np.int64), invalid)
    return dataset.cache


def encode_sample(dataset: FileDataset, index: int) -> bytes | DataFormatError:
    """``dataset.decode(index)`` pickled for a cache, or the error that decoding raised."""
    try:
        sample = dataset.decode(index)
    except DataFormatError as error:
        return error
    out = io.BytesIO()
    _SamplePickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(sample)
    return out.getvalue()


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable`` in ``/proc/meminfo``:
    free memory plus what the kernel can reclaim); None where there is no such file."""
    try:
        lines = MEMINFO.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def format_bytes(size: float) -> str:
    """``41.6 MiB``, ``3.2 GiB``."""
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


def _check_fits(per_sample: float, count: int, copies: int, available: int, measured: int) -> None:
    """Raise :class:`CacheTooLargeError` unless ``copies`` caches of ``count`` samples of
    ``per_sample`` bytes (the mean of ``measured`` samples), plus the margin, fit in
    ``available`` bytes."""
    needed = per_sample * count * (1 + MARGIN)
    if needed * copies <= available:
        return
    processes = f", {format_bytes(needed * copies)} for {copies} processes" if copies > 1 else ""
    raise CacheTooLargeError(
        f"the {count} decoded samples need about {format_bytes(needed)} (measured on {measured} "
        f"of them, plus {MARGIN:.0%}){processes} but only {format_bytes(available)} of memory is "
        f"available (MemAvailable in {MEMINFO})"
    )


def _invalid(dataset: FileDataset, error: DataFormatError) -> DataFormatError:
    """The error of an invalid sample, logged and counted with ``skip_invalid``; raised,
    as reading the sample would raise it, without."""
    if not dataset.skip_invalid:
        raise DataFormatError(error.file, f"{error.reason}; {CHECK_ADVICE}")
    dataset.skip_log.record(error)
    return error


def _restore_tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(array).to(dtype)


class _SamplePickler(pickle.Pickler):
    """Pickles CPU tensors as NumPy arrays (torch's own pickling goes through ``torch.save``,
    about ten times slower to load), integer ones narrowed to the smallest dtype that holds
    their values."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is not torch.Tensor or obj.device.type != "cpu":
            return NotImplemented
        try:
            array = np.ascontiguousarray(obj.numpy())
        except (TypeError, RuntimeError):  # a dtype NumPy lacks (bfloat16), a gradient
            return NotImplemented
        if array.dtype.kind in "iu" and array.size:
            low, high = array.min(), array.max()
            for small in _NARROW:
                limits = np.iinfo(small)
                if np.dtype(small).itemsize >= array.itemsize:
                    break
                if limits.min <= low and high <= limits.max:
                    array = array.astype(small)
                    break
        return _restore_tensor, (array, obj.dtype)

"""Writers of images Pillow cannot write itself: 16-bit colour PNGs, as scanners, microscopes and
raw converters save them.

PNG is written chunk by chunk (signature, IHDR, IDAT, IEND; PNG 1.2, section 4.1), so the file
on disk is exactly the 16-bit image given, big-endian as the format requires.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

# PNG colour types (PNG 1.2, section 4.1.1).
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA


def write_png16(path: Path, array: np.ndarray) -> Path:
    """Save ``array`` (``(H, W)`` or ``(H, W, C)`` uint16, C = 1..4) as a 16-bit PNG."""
    array = np.asarray(array, dtype=np.uint16)
    channels = 1 if array.ndim == 2 else array.shape[2]
    height, width = array.shape[:2]
    rows = array.reshape(height, width * channels).astype(">u2")
    # Each scanline starts with its filter type, 0 (none).
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 16, COLOUR_TYPES[channels], 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type and data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

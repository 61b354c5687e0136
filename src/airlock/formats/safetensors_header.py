"""A checked reader of safetensors headers: the JSON index, never the weights.

Layout: an 8-byte little-endian header length N, N bytes of JSON mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus an
optional ``__metadata__`` of strings), then the data buffer. Everything the
header claims is checked against the file: N fits in the file, the JSON is an
object of well-formed entries, every ``[begin, end)`` lies inside the data
buffer, no two tensors overlap, and a tensor's byte size matches its dtype and
shape. Any problem is a ``SafetensorsError`` with one line naming it.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

# safetensors itself allows 100 MiB; real headers are a few hundred KiB (a 1,000-tensor
# shard is about 150 KiB). Parsed JSON takes ~20× its size in memory: 16 MiB bounds that.
MAX_HEADER = 16 << 20

# Bytes per element; dtypes not listed (newer sub-byte floats) skip the size check.
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}


class SafetensorsError(ValueError):
    """The header is malformed or does not fit the file."""


@dataclass(frozen=True, slots=True)
class SafetensorsSummary:
    tensor_count: int
    parameters: int
    dtypes: dict[str, int]


def read_safetensors_header(path: Path) -> SafetensorsSummary:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError("the file is shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER:
            raise SafetensorsError(
                f"the header length {length} is implausible (over {MAX_HEADER >> 20} MiB)"
            )
        if length > size - 8:
            raise SafetensorsError(
                f"the header length {length} is larger than the file ({size} bytes)"
            )
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            reason = f"{exc.msg} at byte {exc.pos}"
        elif isinstance(exc, RecursionError):
            reason = "nested too deeply"
        else:
            reason = str(exc)[:80]
        raise SafetensorsError(f"the header is not valid JSON ({reason})") from None
    if not isinstance(header, dict):
        raise SafetensorsError("the header is not a JSON object")
    buffer = size - 8 - length
    dtypes: Counter[str] = Counter()
    params = 0
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict):
                raise SafetensorsError("__metadata__ is not an object")
            continue
        dtype, shape, begin, end = _entry(name, info)
        if not 0 <= begin <= end <= buffer:
            raise SafetensorsError(
                f"tensor {_quote(name)} has data_offsets [{begin}, {end}] outside the "
                f"{buffer}-byte data buffer"
            )
        elements = prod(shape)
        width = DTYPE_BYTES.get(dtype)
        if width is not None and elements * width != end - begin:
            raise SafetensorsError(
                f"tensor {_quote(name)}: {dtype} {_quote(str(list(shape)))} needs {elements * width} bytes, "
                f"its data_offsets span {end - begin}"
            )
        if width is None and elements > (end - begin) * 8:
            raise SafetensorsError(
                f"tensor {_quote(name)}: {len(shape)}-d shape of {elements} elements "
                f"cannot fit in {end - begin} bytes"
            )
        spans.append((begin, end, name))
        dtypes[dtype] += 1
        params += elements
    spans.sort()
    reach, holder = 0, ""  # the furthest end so far, and whose it is
    for begin, end, name in spans:
        if begin < reach and end > begin:
            raise SafetensorsError(f"tensors {_quote(holder)} and {_quote(name)} overlap")
        if end > reach:
            reach, holder = end, name
    return SafetensorsSummary(len(spans), params, dict(sorted(dtypes.items())))


def _entry(name: str, info: Any) -> tuple[str, tuple[int, ...], int, int]:
    if not isinstance(info, dict):
        raise SafetensorsError(f"tensor {_quote(name)} is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or not dtype or len(dtype) > 16:
        raise SafetensorsError(f"tensor {_quote(name)} has no valid dtype")
    if not isinstance(shape, list) or len(shape) > 64 or not all(_natural(d) for d in shape):
        raise SafetensorsError(f"tensor {_quote(name)} has no valid shape")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_natural(o) for o in offsets):
        raise SafetensorsError(f"tensor {_quote(name)} has no valid data_offsets")
    return dtype, tuple(shape), offsets[0], offsets[1]


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _quote(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")

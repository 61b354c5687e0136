"""Malformed safetensors headers are one clear InvalidInput, never a KeyError or TypeError."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from airlock.errors import InvalidInput
from airlock.formats import inspect_file


def _file(header: object, data: bytes = b"", *, raw: bytes | None = None) -> bytes:
    text = raw if raw is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _t(dtype: str = "F32", shape: list[int] | None = None, offsets: object = None) -> object:
    return {"dtype": dtype, "shape": shape or [2], "data_offsets": offsets or [0, 8]}


MALFORMED = {
    "shorter than 8 bytes": (b"\x01\x02", "shorter than the 8-byte header length"),
    "header length past the end": (
        struct.pack("<Q", 10_000) + b"{}",
        "larger than the file",
    ),
    "header length 2^63": (struct.pack("<Q", 2**63) + b"{}", "implausible"),
    "not JSON": (_file(None, raw=b"{not json"), "not valid JSON"),
    "JSON nested 100000 deep": (_file(None, raw=b"[" * 100_000), "not valid JSON"),
    "not an object": (_file([1, 2, 3]), "not a JSON object"),
    "entry not an object": (_file({"w": [1]}), "is not an object"),
    "no dtype": (_file({"w": {"shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "dtype"),
    "shape of strings": (_file({"w": _t(shape=["a"])}, b"\0" * 8), "shape"),
    "negative offsets": (_file({"w": _t(offsets=[-8, 0])}, b"\0" * 8), "data_offsets"),
    "offsets out of range": (_file({"w": _t(offsets=[0, 8])}, b"\0" * 4), "outside"),
    "end before begin": (_file({"w": _t(offsets=[8, 0])}, b"\0" * 8), "outside"),
    "size does not match the shape": (
        _file({"w": _t(shape=[3], offsets=[0, 8])}, b"\0" * 8),
        "needs 12 bytes",
    ),
    "overlapping tensors": (
        _file({"a": _t(offsets=[0, 8]), "b": _t(offsets=[4, 12])}, b"\0" * 12),
        "overlap",
    ),
    "overlap hidden behind an empty tensor": (
        _file(
            {
                "a": _t(shape=[4], offsets=[0, 16]),
                "e": _t(shape=[0], offsets=[4, 4]),
                "b": _t(offsets=[8, 16]),
            },
            b"\0" * 16,
        ),
        "overlap",
    ),
    "metadata not an object": (_file({"__metadata__": 5}), "__metadata__"),
    "unknown dtype with a huge shape": (
        _file({"w": _t(dtype="F4X", shape=[2**40, 2**40])}, b"\0" * 8),
        "cannot fit",
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_header_is_one_clear_error(name: str, tmp_path: Path) -> None:
    data, expected = MALFORMED[name]
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    with pytest.raises(InvalidInput) as caught:
        inspect_file(path, "model.safetensors")
    message = caught.value.message
    assert message.startswith("model.safetensors is not a valid safetensors file: ")
    assert expected in message
    assert "\n" not in message and len(message) < 300


def test_real_file_is_summarised(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(
        {"a": np.zeros((4, 8), np.float32), "b": np.zeros(3, np.float16)},
        str(path),
        metadata={"format": "np"},
    )
    fmt = inspect_file(path, "model.safetensors")
    assert fmt is not None
    assert (fmt.kind, fmt.tensor_count, fmt.parameters) == ("safetensors", 2, 35)
    assert fmt.dtypes == {"F16": 1, "F32": 1}

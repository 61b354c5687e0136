"""The GGUF header reader stays bounded on hostile files and agrees with the gguf writer."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from airlock.errors import InvalidInput
from airlock.formats import inspect_file


def _s(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def _head(tensors: int, kvs: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


HOSTILE = {
    # the 49-byte file of issue 10: one array of 2^62 uint8 in a file with no bytes left
    "array of 2^62 elements": _head(0, 1) + _s(b"k") + struct.pack("<IIQ", 9, 0, 2**62),
    "2^60 tensors": _head(2**60, 0),
    "2^60 metadata entries": _head(0, 2**60),
    "more entries than the file can hold": _head(1000, 1000),
    "string of 2^62 bytes": _head(0, 1) + _s(b"k") + struct.pack("<IQ", 8, 2**62),
    "string longer than the file": _head(0, 1) + _s(b"k") + struct.pack("<IQ", 8, 4096) + b"x",
    "array of 2^40 strings": _head(0, 1) + _s(b"k") + struct.pack("<IIQ", 9, 8, 2**40),
    "key of 2^63 bytes": _head(0, 1) + struct.pack("<Q", 2**63) + b"\0" * 16,
    "arrays nested 50 deep": _head(0, 1)
    + _s(b"k")
    + struct.pack("<I", 9)
    + struct.pack("<IQ", 9, 1) * 50,
    "unknown value type": _head(0, 1) + _s(b"k") + struct.pack("<I", 99) + b"\0" * 8,
    "tensor with 2^32-1 dimensions": _head(1, 0) + _s(b"t") + struct.pack("<I", 2**32 - 1),
    "tensor past the end of the file": _head(1, 0)
    + _s(b"t")
    + struct.pack("<IQIQ", 1, 1024, 0, 0),  # 1024 float32 = 4 KiB of data that is not there
    "tensor of 2^120 elements": _head(1, 0)
    + _s(b"t")
    + struct.pack("<IQQIQ", 2, 2**60, 2**60, 99, 0),
    "version 1": _head(0, 0, version=1),
    "version 4096": _head(0, 0, version=4096),
    "truncated header": b"GGUF\x03\x00",
    "not gguf at all": b"PK\x03\x04" + b"\0" * 40,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_header_is_one_clear_error_in_bounded_memory(name: str, tmp_path: Path) -> None:
    path = tmp_path / "evil.gguf"
    path.write_bytes(HOSTILE[name])
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput) as caught:
            inspect_file(path, "evil.gguf")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.message.startswith("evil.gguf is not a valid GGUF file: ")
    assert "\n" not in caught.value.message and len(caught.value.message) < 300
    assert peak < 4 << 20  # the unbounded reader allocated gigabytes here


def _write_real(path: Path, **kv: object) -> None:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_tensor("tok_embd", np.ones((4, 8), dtype=np.float32))
    writer.add_tensor("norm", np.ones((8,), dtype=np.float16))
    writer.add_token_list([b"<s>", b"</s>", b"hello"] * 100)
    writer.add_token_scores([0.5] * 300)
    writer.add_string("tokenizer.chat_template", "{{ messages }}" * 50)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_real_file_summary(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    _write_real(path)
    fmt = inspect_file(path, "tiny.gguf")
    assert fmt is not None and fmt.kind == "gguf"
    assert (fmt.architecture, fmt.tensor_count, fmt.parameters) == ("llama", 2, 40)
    assert fmt.dtypes == {"F16": 1, "F32": 1}


def test_truncated_real_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    _write_real(path)
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # the last tensor (16 bytes, padded to 32) is cut
    with pytest.raises(InvalidInput, match="extends past the end of the file"):
        inspect_file(path, "tiny.gguf")

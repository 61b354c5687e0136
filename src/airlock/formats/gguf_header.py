"""A bounded reader of GGUF headers: the metadata and tensor infos, never the weights.

The ``gguf`` package's reader trusts the counts a file declares: a 49-byte
file claiming 2⁶⁰ array elements made it allocate gigabytes and spin for
minutes. This reader checks every count and length against the bytes the
file really has *before* it reads or allocates anything, caps the work a
header may ask for, and keeps only what the manifest needs (architecture,
tensor count, parameters, dtypes). Memory stays constant: strings other than
``general.architecture`` are skipped, not read.

Layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), versions 2 and 3,
either byte order::

    magic "GGUF" | version u32 | tensor_count u64 | kv_count u64
    kv_count × (key: string, value_type u32, value)
    tensor_count × (name: string, n_dims u32, dims u64[n_dims], type u32, offset u64)
    padding to ``general.alignment`` (default 32), then the tensor data

A string is a u64 length and that many UTF-8 bytes; an array is an element
type u32, a count u64 and the elements.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import BinaryIO

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Caps far above any real model (a 256k-token vocabulary plus its merges is
# about half a million strings), low enough that a hostile header costs at
# most a few seconds of parsing.
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 16
MAX_KEY_BYTES = 1 << 16
MAX_STRING_BYTES = 1 << 26  # a chat template or a licence text, not a payload
MAX_ARRAY_DEPTH = 3
MAX_VARIABLE_ITEMS = 1 << 23  # strings and arrays visited one by one, over the whole header
MAX_DIMS = 8  # ggml has 4

_FIXED_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING = 8
_ARRAY = 9
_UINT32 = 4


class GGUFError(ValueError):
    """The header is malformed or asks for more than the file holds."""


@dataclass(frozen=True, slots=True)
class GGUFSummary:
    version: int
    tensor_count: int
    parameters: int
    dtypes: dict[str, int]
    architecture: str | None


class _Cursor:
    """Reads a file front to back, refusing any read past its end."""

    def __init__(self, f: BinaryIO, size: int, order: str = "<") -> None:
        self.f = f
        self.size = size
        self.pos = 0
        self.order = order
        self.items = 0

    @property
    def left(self) -> int:
        return self.size - self.pos

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.left:
            raise GGUFError(
                f"{what}: {n} bytes needed at offset {self.pos}, the file has {self.left} left"
            )

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.f.read(n)
        if len(data) != n:
            raise GGUFError(f"{what}: the file ended early (it changed while being read?)")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.f.seek(n, 1)
        self.pos += n

    def u32(self, what: str) -> int:
        value: int = struct.unpack(self.order + "I", self.take(4, what))[0]
        return value

    def u64(self, what: str) -> int:
        value: int = struct.unpack(self.order + "Q", self.take(8, what))[0]
        return value

    def count_item(self) -> None:
        self.items += 1
        if self.items > MAX_VARIABLE_ITEMS:
            raise GGUFError(f"the header holds more than {MAX_VARIABLE_ITEMS} strings or arrays")

    def string_length(self, what: str, cap: int) -> int:
        n = self.u64(f"the length of {what}")
        if n > cap:
            raise GGUFError(f"{what} claims {n} bytes (at most {cap} allowed)")
        self.need(n, what)
        return n


def read_gguf_header(path: Path) -> GGUFSummary:
    """Parse ``path``'s header within fixed bounds; raise ``GGUFError`` when it is malformed."""
    size = path.stat().st_size
    with path.open("rb", buffering=64 << 10) as f:
        cur = _Cursor(f, size)
        if cur.take(4, "the magic number") != MAGIC:
            raise GGUFError("it does not start with the GGUF magic number")
        raw_version = cur.take(4, "the version")
        version = struct.unpack("<I", raw_version)[0]
        if version & 0xFFFF == 0:  # written big-endian
            cur.order = ">"
            version = struct.unpack(">I", raw_version)[0]
        if version not in SUPPORTED_VERSIONS:
            raise GGUFError(f"GGUF version {version} is not supported (only 2 and 3)")
        tensor_count = cur.u64("the tensor count")
        kv_count = cur.u64("the metadata count")
        if tensor_count > MAX_TENSORS:
            raise GGUFError(f"it claims {tensor_count} tensors (at most {MAX_TENSORS} allowed)")
        if kv_count > MAX_KV:
            raise GGUFError(f"it claims {kv_count} metadata entries (at most {MAX_KV} allowed)")
        # Each entry takes at least 12 bytes, each tensor info at least 24: a count
        # the file cannot hold is refused before any of them is read.
        cur.need(
            kv_count * 12 + tensor_count * 24, f"{kv_count} entries and {tensor_count} tensors"
        )
        architecture: str | None = None
        alignment = DEFAULT_ALIGNMENT
        for _ in range(kv_count):
            key = _read_key(cur)
            vtype = cur.u32(f"the type of {key!r}")
            if key == "general.architecture" and vtype == _STRING:
                n = cur.string_length(key, MAX_STRING_BYTES)
                if n <= 256:
                    architecture = cur.take(n, key).decode("utf-8", "replace")
                else:
                    cur.skip(n, key)
            elif key == "general.alignment" and vtype == _UINT32:
                alignment = cur.u32(key)
                if alignment == 0 or alignment & (alignment - 1) or alignment > 1 << 20:
                    raise GGUFError(f"general.alignment {alignment} is not a power of two ≤ 1 MiB")
            else:
                _skip_value(cur, vtype, key, depth=0)
        tensors = [_read_tensor_info(cur, i) for i in range(tensor_count)]
        data_start = -(-cur.pos // alignment) * alignment
    dtypes: Counter[str] = Counter()
    params = 0
    for name, dims, ttype, offset in tensors:
        elements = prod(dims)
        if elements > size * 8:  # no ggml type packs more than 8 weights in a byte
            raise GGUFError(
                f"tensor {_quote(name)} claims {elements} elements in a {size}-byte file"
            )
        params += elements
        type_name, nbytes = _tensor_type(ttype, elements)
        dtypes[type_name] += 1
        if nbytes is not None and data_start + offset + nbytes > size:
            raise GGUFError(
                f"tensor {_quote(name)} ({nbytes} bytes at data offset {offset}) "
                "extends past the end of the file: it is truncated"
            )
    return GGUFSummary(
        version=version,
        tensor_count=len(tensors),
        parameters=params,
        dtypes=dict(sorted(dtypes.items())),
        architecture=architecture,
    )


def _read_key(cur: _Cursor) -> str:
    n = cur.string_length("a metadata key", MAX_KEY_BYTES)
    return cur.take(n, "a metadata key").decode("utf-8", "replace")


def _skip_value(cur: _Cursor, vtype: int, key: str, *, depth: int) -> None:
    fixed = _FIXED_SIZES.get(vtype)
    if fixed is not None:
        cur.skip(fixed, f"the value of {_quote(key)}")
    elif vtype == _STRING:
        cur.count_item()
        cur.skip(cur.string_length(f"the value of {_quote(key)}", MAX_STRING_BYTES), key)
    elif vtype == _ARRAY:
        if depth >= MAX_ARRAY_DEPTH:
            raise GGUFError(f"{_quote(key)} nests arrays deeper than {MAX_ARRAY_DEPTH} levels")
        cur.count_item()
        etype = cur.u32(f"the element type of {_quote(key)}")
        count = cur.u64(f"the length of {_quote(key)}")
        efixed = _FIXED_SIZES.get(etype)
        if efixed is not None:
            cur.skip(count * efixed, f"the {count} elements of {_quote(key)}")
            return
        if etype not in (_STRING, _ARRAY):
            raise GGUFError(f"{_quote(key)} has elements of unknown type {etype}")
        # A string takes at least 8 bytes, an array at least 12.
        cur.need(count * (8 if etype == _STRING else 12), f"the {count} elements of {_quote(key)}")
        for _ in range(count):
            _skip_value(cur, etype, key, depth=depth + 1)
    else:
        raise GGUFError(f"{_quote(key)} has a value of unknown type {vtype}")


def _read_tensor_info(cur: _Cursor, index: int) -> tuple[str, tuple[int, ...], int, int]:
    n = cur.string_length(f"the name of tensor {index}", MAX_KEY_BYTES)
    name = cur.take(n, f"the name of tensor {index}").decode("utf-8", "replace")
    n_dims = cur.u32(f"the dimension count of {_quote(name)}")
    if n_dims > MAX_DIMS:
        raise GGUFError(f"tensor {_quote(name)} claims {n_dims} dimensions (at most {MAX_DIMS})")
    dims = tuple(cur.u64(f"a dimension of {_quote(name)}") for _ in range(n_dims))
    ttype = cur.u32(f"the type of {_quote(name)}")
    offset = cur.u64(f"the data offset of {_quote(name)}")
    return name, dims, ttype, offset


def _tensor_type(ttype: int, elements: int) -> tuple[str, int | None]:
    """The ggml type's name and the tensor's size in bytes (None when the type is unknown)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        qtype = GGMLQuantizationType(ttype)
    except ValueError:
        return f"TYPE_{ttype}", None  # newer than the installed gguf package: keep the count
    sizes = GGML_QUANT_SIZES.get(qtype)
    if sizes is None:
        return qtype.name, None
    block, type_size = sizes
    if elements % block:
        raise GGUFError(
            f"a {qtype.name} tensor of {elements} elements is not a whole number of blocks"
        )
    return qtype.name, elements // block * type_size


def _quote(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")

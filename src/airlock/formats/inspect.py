"""Learn what a model file holds from its header alone.

- safetensors: 8-byte little-endian header length, then a JSON header with
  each tensor's dtype and shape; the weights are never read.
- GGUF: the ``gguf`` package's reader memory-maps the file and parses the
  key/value metadata and tensor infos (architecture, tensor count).
- pickle-based formats (``.bin``, ``.pt``, ``.pkl``, ``.ckpt``...) can run
  arbitrary code when loaded: they are flagged ``unsafe``.
"""

from __future__ import annotations

import json
import mimetypes
import struct
import zipfile
from collections import Counter
from math import prod
from pathlib import Path

from airlock.core.manifest import PICKLE_SUFFIXES, FileFormat
from airlock.errors import InvalidInput

MAX_SAFETENSORS_HEADER = 100 << 20

_MEDIA_TYPES = {
    ".safetensors": "application/vnd.safetensors",
    ".gguf": "application/vnd.gguf",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".model": "application/vnd.sentencepiece",
}


def media_type_for(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in _MEDIA_TYPES:
        return _MEDIA_TYPES[suffix]
    if suffix in PICKLE_SUFFIXES:
        return "application/x-pickle"
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def inspect_file(path: Path, rel: str) -> FileFormat | None:
    """A ``FileFormat`` for model files, None for ordinary files."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _safetensors(path, rel)
    if suffix == ".gguf":
        return _gguf(path, rel)
    if suffix in PICKLE_SUFFIXES or _looks_like_pickle(path):
        return FileFormat(kind="pickle", unsafe=True, detail=_pickle_detail(path))
    return None


def _safetensors(path: Path, rel: str) -> FileFormat:
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("file is shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_SAFETENSORS_HEADER:
                raise ValueError(f"header length {length} is implausible")
            header = json.loads(f.read(length))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"{rel} is not a valid safetensors file: {exc}",
            hint="re-export it with safetensors.save_file, or give it another extension",
        ) from exc
    dtypes: Counter[str] = Counter()
    params = 0
    count = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtypes[str(info["dtype"])] += 1
        params += prod(int(d) for d in info["shape"])
        count += 1
    return FileFormat(
        kind="safetensors",
        tensor_count=count,
        parameters=params,
        dtypes=dict(sorted(dtypes.items())),
    )


def _gguf(path: Path, rel: str) -> FileFormat:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception as exc:  # the gguf reader raises plain ValueError/struct errors
        raise InvalidInput(
            f"{rel} is not a valid GGUF file: {exc}",
            hint="check the file, or give it another extension",
        ) from exc
    arch = None
    field = reader.fields.get("general.architecture")
    if field is not None:
        arch = bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    dtypes: Counter[str] = Counter(t.tensor_type.name for t in reader.tensors)
    params = sum(int(t.n_elements) for t in reader.tensors)
    return FileFormat(
        kind="gguf",
        tensor_count=len(reader.tensors),
        parameters=params,
        dtypes=dict(sorted(dtypes.items())),
        architecture=arch,
    )


def _looks_like_pickle(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(2)
    except OSError:
        return False
    # PROTO opcode (0x80) followed by protocol 2..5
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _pickle_detail(path: Path) -> str:
    if zipfile.is_zipfile(path):
        return "PyTorch zip archive with pickled objects"
    return "pickle data: loading it can execute arbitrary code"

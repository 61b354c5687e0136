"""Learn what a model file holds from its header alone.

- safetensors: 8-byte little-endian header length, then a JSON header with
  each tensor's dtype, shape and offsets; checked against the file
  (``safetensors_header``), the weights are never read.
- GGUF: the key/value metadata and tensor infos, read by a bounded parser of
  our own (``gguf_header``): every count and length is checked against the
  file's size before anything is read or allocated.
- pickled data can run arbitrary code when loaded: files named like pickle
  formats (``.bin``, ``.pt``, ``.pkl``, ``.ckpt``...) and files whose *bytes*
  are a pickle or a zip holding one, whatever their name (``pickle_sniff``),
  are flagged ``unsafe``.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from airlock.core.manifest import PICKLE_SUFFIXES, FileFormat
from airlock.errors import InvalidInput
from airlock.formats.gguf_header import GGUFError, read_gguf_header
from airlock.formats.pickle_sniff import sniff_pickle
from airlock.formats.safetensors_header import (
    SafetensorsError,
    read_safetensors_header,
)

PICKLE_MEDIA_TYPE = "application/x-pickle"

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
        return PICKLE_MEDIA_TYPE
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def inspect_file(path: Path, rel: str) -> FileFormat | None:
    """A ``FileFormat`` for model files, None for ordinary files."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _safetensors(path, rel)
    if suffix == ".gguf":
        return _gguf(path, rel)
    detail = sniff_pickle(path)
    if detail is not None:
        return FileFormat(kind="pickle", unsafe=True, detail=detail)
    if suffix in PICKLE_SUFFIXES:
        return FileFormat(
            kind="pickle",
            unsafe=True,
            detail="named like a pickle-based format: loading it can execute arbitrary code",
        )
    return None


def _safetensors(path: Path, rel: str) -> FileFormat:
    try:
        summary = read_safetensors_header(path)
    except (SafetensorsError, OSError) as exc:
        raise InvalidInput(
            f"{rel} is not a valid safetensors file: {exc}",
            hint="re-export it with safetensors.save_file, or give it another extension",
        ) from None
    return FileFormat(
        kind="safetensors",
        tensor_count=summary.tensor_count,
        parameters=summary.parameters,
        dtypes=summary.dtypes,
    )


def _gguf(path: Path, rel: str) -> FileFormat:
    try:
        summary = read_gguf_header(path)
    except (GGUFError, OSError) as exc:
        raise InvalidInput(
            f"{rel} is not a valid GGUF file: {exc}",
            hint="check the file (is it complete?), or give it another extension",
        ) from None
    return FileFormat(
        kind="gguf",
        tensor_count=summary.tensor_count,
        parameters=summary.parameters,
        dtypes=summary.dtypes,
        architecture=summary.architecture,
    )

"""Pickled data is recognised by its bytes, whatever the file is called."""

from __future__ import annotations

import collections
import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from airlock.formats import inspect_file

_OBJECT = {
    "weights": [1.5, 2.5],
    "name": "x",
    "nested": (1, None, True),
    "od": collections.OrderedDict(a=1),
}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


PICKLED = {
    **{
        f"protocol {p} as weights.dat": ("weights.dat", pickle.dumps(_OBJECT, protocol=p))
        for p in range(6)
    },
    "protocol 0, large, as data.txt": (
        "data.txt",
        pickle.dumps([f"row {i}" for i in range(20_000)], protocol=0),
    ),
    "protocol 0 reduce as notes.md": (
        "notes.md",
        b"cos\nsystem\n(S'echo pwned'\ntR.",
    ),
    "torch-style zip named .tar": (
        "model.tar",
        _zip({"archive/data.pkl": pickle.dumps(_OBJECT, protocol=2), "archive/data/0": b"\0" * 64}),
    ),
    "zip with a pickle under another name": (
        "bundle.zip",
        _zip({"readme.txt": b"hello", "blob": pickle.dumps(_OBJECT, protocol=4)}),
    ),
    "zip with a protocol-0 pickle member": (
        "bundle.data",
        _zip({"state": pickle.dumps(_OBJECT, protocol=0)}),
    ),
}


@pytest.mark.parametrize("case", sorted(PICKLED))
def test_pickle_is_flagged_by_content(case: str, tmp_path: Path) -> None:
    name, data = PICKLED[case]
    path = tmp_path / name
    path.write_bytes(data)
    fmt = inspect_file(path, name)
    assert fmt is not None and fmt.kind == "pickle" and fmt.unsafe
    assert fmt.detail and "pickle" in fmt.detail


ORDINARY = {
    "config.json": json.dumps({"hidden": 8, "layers": [1, 2]}).encode(),
    "README.md": b"# Model\n\nMIT License. (c) 2024\n",
    "LICENSE": b"(c) 2024 Example Corp\nAll rights reserved.\n",
    "notes.txt": b"N",  # one opcode, no STOP: not a pickle
    "merges.txt": b"#version: 0.2\nI t\nS o\n",
    "vocab.txt": b"[PAD]\n[UNK]\nhello\n" * 1000,
    "tokenizer.model": bytes(range(256)) * 10,
    "plain.zip": _zip({"a.txt": b"hello", "b.json": b"{}"}),
    "empty.dat": b"",
}


@pytest.mark.parametrize("name", sorted(ORDINARY))
def test_ordinary_files_are_not_flagged(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(ORDINARY[name])
    assert inspect_file(path, name) is None


def test_pickle_suffix_is_still_flagged_whatever_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(b"\0" * 64)
    fmt = inspect_file(path, "pytorch_model.bin")
    assert fmt is not None and fmt.unsafe


def test_a_zip_too_large_to_index_is_treated_as_unsafe(tmp_path: Path) -> None:
    """A crafted end record claiming a 2 GiB index: not parsed (zipfile would hold ~10× it)."""
    import struct

    end = b"PK\x05\x06" + struct.pack("<4H2LH", 0, 0, 60000, 60000, 2**31, 0, 0)
    path = tmp_path / "huge.zip"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100 + end)
    fmt = inspect_file(path, "huge.zip")
    assert fmt is not None and fmt.unsafe and fmt.detail and "too large" in fmt.detail


def test_invalid_escapes_in_sniffed_bytes_never_raise_even_under_w_error() -> None:
    """pickletools warns on an invalid escape in a protocol-0 string; the sniffer must
    answer, not crash, whatever the process's warning filters."""
    import warnings

    from airlock.formats.pickle_sniff import pickle_kind

    data = b"S'\\q'\np0\n."  # STRING with an invalid escape, PUT, STOP
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pickle_kind(data, complete=True) == "protocol 0/1"

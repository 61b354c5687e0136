"""Bad input on the push path, through the real CLI: each case is one error line with a hint,
exit code 1, no traceback, and nothing half-written (no release, no blob, no staging file).

Each row builds a model folder (or an extra input file) the way an attacker or a careless
user would, then pushes it. The runner does not catch exceptions: a traceback fails the row.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from airlock_testkit import Cli, write_model

Setup = Callable[[Path, Path], list[str]]  # (model folder, scratch dir) -> extra push arguments


@dataclass(frozen=True)
class Case:
    setup: Setup
    expect: str  # a phrase the error line must hold


def _put(folder: Path, name: str, data: bytes) -> list[str]:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return []


def _file(name: str, data: bytes) -> Setup:
    return lambda folder, _: _put(folder, name, data)


def _input(option: str, name: str, text: str | bytes) -> Setup:
    def setup(_: Path, scratch: Path) -> list[str]:
        path = scratch / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return [option, str(path)]

    return setup


def _args(*args: str) -> Setup:
    return lambda _folder, _scratch: list(args)


def _gguf_49_bytes() -> bytes:
    key = struct.pack("<Q", 1) + b"k"
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + key + struct.pack("<IIQ", 9, 0, 2**62)


def _safetensors(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _symlink_loop(folder: Path, _: Path) -> list[str]:
    (folder / "loop").symlink_to(folder / "loop")
    return []


def _dir_symlink_loop(folder: Path, _: Path) -> list[str]:
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return []


def _broken_link(folder: Path, _: Path) -> list[str]:
    (folder / "gone.json").symlink_to(folder / "nowhere.json")
    return []


def _case_collision(folder: Path, _: Path) -> list[str]:
    (folder / "Tokenizer.json").write_text("{}")
    (folder / "tokenizer.json").write_text("[]")
    return []


def _nfc_collision(folder: Path, _: Path) -> list[str]:
    (folder / unicodedata.normalize("NFC", "café.txt")).write_text("composed")
    (folder / unicodedata.normalize("NFD", "café.txt")).write_text("decomposed")
    return []


def _long_path(folder: Path, _: Path) -> list[str]:
    deep = folder.joinpath(*(["d" * 250] * 5))
    deep.mkdir(parents=True)
    (deep / "x.txt").write_text("deep")  # a path of 1,260 characters
    return []


def _newline_name(folder: Path, _: Path) -> list[str]:
    (folder / "bad\nname.txt").write_text("x")
    return []


def _undecodable_name(folder: Path, _: Path) -> list[str]:
    fd = os.open(os.fsencode(folder) + b"/bad\xff.txt", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    return []


def _fifo_notes(_: Path, scratch: Path) -> list[str]:
    os.mkfifo(scratch / "notes.yaml")  # reading it would block forever
    return ["--notes", str(scratch / "notes.yaml")]


def _spec(text: str) -> Setup:
    def setup(folder: Path, scratch: Path) -> list[str]:
        (scratch / "spec.yaml").write_text(text.replace("FOLDER", str(folder)))
        return ["--spec", str(scratch / "spec.yaml")]

    return setup


def _spec_loop(folder: Path, scratch: Path) -> list[str]:
    (scratch / "loop").symlink_to(scratch / "loop")
    (scratch / "spec.yaml").write_text("files:\n  - {path: w.bin, source: loop}\n")
    return ["--spec", str(scratch / "spec.yaml")]


_SPEC_FILE = "files:\n  - {path: config.json, source: FOLDER/config.json}\n"

_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)
_PICKLE0 = pickle.dumps({"w": [1.0, 2.0], "name": "x"}, protocol=0)

CASES: dict[str, Case] = {
    # 1. model-file headers: bounded, checked
    "gguf: 49 bytes claiming 2^62 elements": Case(
        _file("evil.gguf", _gguf_49_bytes()), "not a valid GGUF file"
    ),
    "gguf: 2^60 tensors": Case(
        _file("evil.gguf", b"GGUF" + struct.pack("<IQQ", 3, 2**60, 0)), "not a valid GGUF file"
    ),
    "safetensors: header is not JSON": Case(
        _file("bad.safetensors", _safetensors(b"{nope")), "not valid JSON"
    ),
    "safetensors: header length past the end": Case(
        _file("bad.safetensors", struct.pack("<Q", 999_999) + b"{}"), "larger than the file"
    ),
    "safetensors: entry is a list": Case(
        _file("bad.safetensors", _safetensors(b'{"w": [1, 2]}')), "is not an object"
    ),
    "safetensors: offsets out of range": Case(
        _file(
            "bad.safetensors",
            _safetensors(b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'),
        ),
        "outside",
    ),
    "safetensors: overlapping tensors": Case(
        _file(
            "bad.safetensors",
            _safetensors(
                b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},'
                b' "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}',
                b"\0" * 12,
            ),
        ),
        "overlap",
    ),
    # 3. pickle by content
    "pickle: protocol 0 named .dat": Case(_file("weights.dat", _PICKLE0), "pickle-based"),
    "pickle: protocol 4 named .npz": Case(
        _file("weights.npz", pickle.dumps([1, 2], protocol=4)), "pickle-based"
    ),
    "pickle: zip named .tar holding data.pkl": Case(
        _file("model.tar", _zip({"archive/data.pkl": pickle.dumps({}, protocol=2)})),
        "pickle-based",
    ),
    # 4. colliding names
    "paths differing only by case": Case(_case_collision, "differ only by case"),
    "paths differing only by Unicode normalisation": Case(
        _nfc_collision, "differ only by Unicode normalisation"
    ),
    # 5. YAML alias bombs
    "alias bomb in --training-config": Case(
        _input("--training-config", "train.yaml", _BOMB), "aliases are expanded"
    ),
    "alias bomb in --notes": Case(
        _input("--notes", "notes.yaml", _BOMB.replace("a: &a", "summary: s\nzz: &a")),
        "aliases are expanded",
    ),
    # 6. no traceback for any of these
    "symbolic link loop (file)": Case(_symlink_loop, "symbolic link loop"),
    "symbolic link loop (folders)": Case(_dir_symlink_loop, "symbolic link loop"),
    "broken symbolic link": Case(_broken_link, "is broken"),
    "notes with caveats: 5": Case(_input("--notes", "notes.yaml", "caveats: 5\n"), "caveats"),
    "notes with summary: [list]": Case(
        _input("--notes", "notes.yaml", "summary: [a, b]\n"), "summary"
    ),
    "notes that are a list": Case(
        _input("--notes", "notes.yaml", "- a\n- b\n"), "must hold a mapping"
    ),
    "notes that are not UTF-8": Case(_input("--notes", "notes.md", b"\xff\xfe\xfa"), "UTF-8"),
    "notes that are a folder": Case(
        lambda _f, scratch: ["--notes", str(scratch)], "is not a regular file"
    ),
    "notes nested 100,000 deep": Case(
        _input("--notes", "notes.json", "[" * 100_000), "not valid JSON/YAML"
    ),
    "notes summary of 70,000 characters": Case(
        _input("--notes", "notes.yaml", "summary: " + "x" * 70_000 + "\n"), "at most 65536"
    ),
    "notes file of 5 MiB": Case(
        _input("--notes", "notes.yaml", "summary: " + "x" * (5 << 20)), "at most 4194304"
    ),
    "--metric x=nan": Case(_args("--metric", "x=nan"), "not a finite number"),
    "--metric x=inf": Case(_args("--metric", "x=-inf"), "not a finite number"),
    "--metric x=abc": Case(_args("--metric", "x=abc"), "is not a number"),
    "training config with .nan": Case(
        _input("--training-config", "train.yaml", "lr: .nan\n"), "not a finite number"
    ),
    "training config that is a list": Case(
        _input("--training-config", "train.yaml", "- 1\n"), "must hold a mapping"
    ),
    "--dataset with a 5,000-character name": Case(
        _args("--dataset", "d=" + "x" * 5000), "at most 2048"
    ),
    "--code-commit of 300 characters": Case(
        _args("--code-commit", "c" * 300), "at most 128 characters"
    ),
    "a file name with a newline": Case(_newline_name, "control character"),
    "a file name that is not UTF-8": Case(_undecodable_name, "not valid UTF-8"),
    "notes that are a named pipe": Case(_fifo_notes, "is not a regular file"),
    "--spec whose source is a link loop": Case(_spec_loop, "symbolic link loop"),
    "--spec with a metric .nan": Case(_spec(_SPEC_FILE + "metrics: {x: .nan}\n"), "finite number"),
    "--spec with caveats: 5": Case(_spec(_SPEC_FILE + "notes: {caveats: 5}\n"), "caveats"),
    "--spec that is an alias bomb": Case(_spec(_BOMB), "aliases are expanded"),
    # 7. lengths the catalog columns hold
    "a path of 1,260 characters": Case(_long_path, "at most 1024"),
    "a version of 200 characters": Case(
        _args("--version", "1.0.0-" + "a" * 194), "at most 128 characters"
    ),
    "a model name of 200 characters": Case(_args("--name", "m" * 200), "at most 128 characters"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_push_input_is_one_clear_line(case: str, cli: Cli, tmp_path: Path) -> None:
    cli("init")
    folder = write_model(tmp_path / "model", shards=1)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    extra = CASES[case].setup(folder, scratch)
    source = [] if "--spec" in extra else [str(folder)]
    args = ["push", *source, "--name", "chat", "--version", "1.0.0", *extra]
    for flag in ("--name", "--version"):  # a case may give its own
        if extra.count(flag):
            i = args.index(flag)
            del args[i : i + 2]
    result = cli(*args, ok=False)
    out = result.output
    assert result.exit_code == 1, out
    assert "Traceback" not in out
    error = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(error) == 1, out
    assert CASES[case].expect in error[0], out
    assert len(error[0]) < 400, "the error must not echo unbounded input"
    assert any(line.startswith("hint:") for line in out.splitlines()), out
    # nothing half-written
    home = tmp_path / ".airlock"
    assert "no models yet" in cli("ls").output
    assert not [p for p in (home / "blobs" / "sha256").rglob("*") if p.is_file()]
    assert not list((home / "blobs" / ".staging").iterdir())


def test_the_table_pushes_cleanly_without_the_fault(cli: Cli, tmp_path: Path) -> None:
    """The folder every row starts from is a good release: each row fails by its fault alone."""
    cli("init")
    folder = write_model(tmp_path / "model", shards=1)
    (tmp_path / "notes.yaml").write_text("summary: fine\ncaveats: English only\n")
    (tmp_path / "train.yaml").write_text("base: &b {lr: 0.1}\nrun: *b\n")  # a benign alias
    out = cli(
        "push", folder, "--name", "chat", "--version", "1.0.0", "--metric", "x=0.5",
        "--notes", tmp_path / "notes.yaml", "--training-config", tmp_path / "train.yaml",
    ).output  # fmt: skip
    assert "pushed chat@1.0.0" in out
    shown = json.loads(cli("show", "chat@1.0.0", "--json").output)
    assert shown["notes"]["caveats"] == ["English only"]
    assert shown["lineage"]["training_config"]["run"] == {"lr": 0.1}

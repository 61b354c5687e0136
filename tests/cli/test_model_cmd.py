"""``airlock model train`` / ``generate`` through Typer's runner, on real files."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from airlock.cli.model_cmd import model_app
from airlock.runtime.builtin_model import FILES, BuiltinModel

runner = CliRunner()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    source = files("airlock") / "examples" / "corpus_v1.txt"
    path.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_loading_the_commands_imports_no_heavy_library() -> None:
    code = (
        "import sys, json, typer\n"
        "from airlock.cli.model_cmd import model_app\n"
        "typer.main.get_command(model_app)\n"
        "print(json.dumps([m for m in ('numpy', 'safetensors') if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_train_writes_a_loadable_release_folder(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    result = runner.invoke(
        model_app, ["train", "--corpus", str(corpus), "--out", str(out), "--order", "4"]
    )

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    model = BuiltinModel.load(out)
    assert model.order == 4
    assert f"{model.vocab_size:,} tokens" in result.output
    assert f"{model.entry_count:,}" in result.output
    assert " ms" in result.output
    assert "4gram.next" in load_file(str(out / "model.safetensors"))


def test_generate_continues_a_prompt_with_the_trained_model(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    assert (
        runner.invoke(model_app, ["train", "--corpus", str(corpus), "--out", str(out)]).exit_code
        == 0
    )

    result = runner.invoke(
        model_app,
        ["generate", str(out), "The Lumen lamp charges through the", "--temperature", "0"],
    )

    assert result.exit_code == 0, result.output
    assert "The Lumen lamp charges through the micro USB" in result.output
    assert "finish_reason=" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("   \n\n", "is empty"), (b"\xff\xfe\x00bad", "is not UTF-8")],
)
def test_a_missing_or_empty_corpus_is_a_one_line_error(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    corpus = tmp_path / "corpus.txt"
    if isinstance(content, str):
        corpus.write_text(content)
    elif isinstance(content, bytes):
        corpus.write_bytes(content)

    result = runner.invoke(
        model_app, ["train", "--corpus", str(corpus), "--out", str(tmp_path / "o")]
    )

    assert result.exit_code == 1
    assert f"error: corpus {corpus} {message}" in result.output
    assert "hint:" in result.output
    assert not (tmp_path / "o").exists()


def test_a_non_empty_out_folder_needs_force(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    out.mkdir()
    (out / "notes.md").write_text("keep me")
    args = ["train", "--corpus", str(corpus), "--out", str(out)]

    refused = runner.invoke(model_app, args)
    assert refused.exit_code == 1
    assert "is not empty" in refused.output
    assert "--force" in refused.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.md"]

    forced = runner.invoke(model_app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "notes.md"])


def test_a_bad_order_is_reported_without_writing(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    result = runner.invoke(
        model_app, ["train", "--corpus", str(corpus), "--out", str(out), "--order", "0"]
    )

    assert result.exit_code == 1
    assert "error: order must be between 1 and 8" in result.output
    assert not out.exists()

"""``airlock model``: train the built-in n-gram model into a release folder, and try it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from airlock.cli.common import console, handle_errors, human_count
from airlock.errors import Conflict, InvalidInput, NotFound

model_app = typer.Typer(
    help="Train and try the built-in model (a word n-gram model; no GPU, no downloads).",
    no_args_is_help=True,
)

_CORPUS_HINT = "give a UTF-8 text file, e.g. an example corpus from airlock/examples/"


@model_app.command("train")
@handle_errors
def train_cmd(
    corpus: Annotated[Path, typer.Option("--corpus", help="UTF-8 text to learn from.")],
    out: Annotated[Path, typer.Option("--out", help="Release folder to write.")],
    order: Annotated[int, typer.Option(help="n of the n-grams (1-8).")] = 3,
    seed: Annotated[int, typer.Option(help="Recorded in config.json for lineage.")] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty --out folder.")
    ] = False,
) -> None:
    """Train the built-in model on a corpus and write a release folder you can push."""
    from rich.table import Table

    from airlock.runtime.builtin_model import train

    text = _read_corpus(corpus)
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {out} is a file", hint="give a folder path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise Conflict(
            f"--out {out} is not empty",
            hint="choose another folder, or pass --force to overwrite its model files",
        )
    started = time.perf_counter()
    model = train(text, order=order, seed=seed)
    written = model.save(out)
    elapsed = time.perf_counter() - started

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("order", str(model.order))
    table.add_row("vocabulary", f"{model.vocab_size:,} tokens")
    table.add_row("entries", f"{model.entry_count:,} ({human_count(model.entry_count)})")
    table.add_row("corpus", f"{model.config['training']['corpus_tokens']:,} tokens")
    table.add_row("time", f"{elapsed * 1000:.0f} ms")
    table.add_row("files", ", ".join(p.name for p in written))
    console.print(f"trained [bold]{out}[/]")
    console.print(table)
    console.print(f"next: [bold]airlock push {out} --name NAME --version 1.0.0[/]")


@model_app.command("generate")
@handle_errors
def generate_cmd(
    folder: Annotated[Path, typer.Argument(help="A folder written by `airlock model train`.")],
    prompt: Annotated[str, typer.Argument(help="Text to continue.")] = "",
    max_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 64,
    temperature: Annotated[float, typer.Option(help="0 is greedy.")] = 0.8,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass, in (0, 1].")] = 0.95,
    seed: Annotated[int | None, typer.Option(help="Same seed, same text.")] = None,
) -> None:
    """Continue a prompt with a trained built-in model (prints the completion)."""
    from airlock.runtime.builtin_model import BuiltinModel

    model = BuiltinModel.load(folder)
    result = model.generate(
        prompt, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed
    )
    console.print(prompt + result.text, markup=False)
    console.print(
        f"[dim]{result.completion_tokens} tokens, finish_reason={result.finish_reason}[/]"
    )


def _read_corpus(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFound(f"corpus {path} does not exist", hint=_CORPUS_HINT) from exc
    except IsADirectoryError as exc:
        raise InvalidInput(f"corpus {path} is a folder", hint=_CORPUS_HINT) from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"corpus {path} is not UTF-8 text", hint=_CORPUS_HINT) from exc
    if not text.strip():
        raise InvalidInput(f"corpus {path} is empty", hint=_CORPUS_HINT)
    return text

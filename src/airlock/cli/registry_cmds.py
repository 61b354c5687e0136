"""Commands over releases: init, push, ls, show, diff, pull, verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from airlock.cli.common import (
    ByteProgress,
    actor,
    console,
    err_console,
    handle_errors,
    human_bytes,
    workspace,
)
from airlock.cli.paging import PageCursor, PageLimit, more_hint
from airlock.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airlock.services.signatures import SignatureCheck


@handle_errors
def init() -> None:
    """Create an Airlock workspace (./.airlock: SQLite catalog + local blob store)."""
    from airlock.cli.token_cmd import init_owner_token

    with workspace(create=True) as ws:
        console.print(f"Airlock workspace ready at [bold]{ws.home}[/]")
        console.print(f"  catalog: {ws.settings.catalog_url.split('@')[-1]}")
        console.print(f"  store:   {ws.store.url}")
        init_owner_token(ws)
        console.print("next: [bold]airlock push PATH --name NAME --version 1.0.0[/]")


@handle_errors
def push(
    path: Annotated[
        Path | None, typer.Argument(help="Model folder (or single file) to push.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Model name, e.g. chat.")] = None,
    version: Annotated[
        str | None, typer.Option("--version", "-v", help="Semantic version, e.g. 1.2.0.")
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            help="Release spec (YAML/JSON): files mapped from anywhere on disk plus metadata; "
            "flags override its fields."
        ),
    ] = None,
    notes: Annotated[
        Path | None, typer.Option(help="Release notes: YAML/JSON fields, or Markdown/text summary.")
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(help="NAME=PATH_OR_DIGEST_OR_URI of a training dataset (repeatable)."),
    ] = None,
    component: Annotated[
        list[str] | None,
        typer.Option(
            help="ROLE=REF: a file of the folder, a blob digest or a release (repeatable)."
        ),
    ] = None,
    parent: Annotated[str | None, typer.Option(help="The release this one derives from.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="NAME=NUMBER offline metric (repeatable).")
    ] = None,
    code_repo: Annotated[str | None, typer.Option(help="Training code repository.")] = None,
    code_commit: Annotated[str | None, typer.Option(help="Training code commit.")] = None,
    training_config: Annotated[
        Path | None, typer.Option(help="Training configuration file (YAML/JSON).")
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option(help="Accept pickle-based weights (.bin/.pt/.pkl/.ckpt); flagged unsafe."),
    ] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Re-hash the stored copy of every file and replace any damaged one from it.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Push a folder as an immutable release NAME@VERSION (content-addressed, deduplicated)."""
    from airlock.core.digest import short
    from airlock.services.push_inputs import (
        code_ref,
        dataset_from_spec,
        parse_metrics,
        read_notes,
        read_training_config,
        split_pair,
    )
    from airlock.services.spec import load_spec

    loaded = load_spec(spec) if spec else None
    if (path is None) == (loaded is None):
        raise InvalidInput("give either PATH or --spec FILE", hint="see `airlock push --help`")
    name = name or (loaded.name if loaded else None)
    version = version or (loaded.version if loaded else None)
    if not name or not version:
        raise InvalidInput("--name and --version are required", hint="or set them in the spec")
    notes_value = read_notes(notes) if notes else (loaded.notes if loaded else None)
    datasets = [dataset_from_spec(d) for d in dataset or []] or (loaded.datasets if loaded else [])
    components = dict(loaded.components) if loaded else {}
    components.update(split_pair(c, "--component role=ref") for c in component or [])
    metrics = {**(loaded.metrics if loaded else {}), **parse_metrics(metric or [])}
    code = code_ref(code_repo, code_commit) or (loaded.code if loaded else None)
    tc = read_training_config(training_config) if training_config else None
    tc = tc if tc is not None else (loaded.training_config if loaded else None)
    parent = parent or (loaded.parent if loaded else None)
    source = loaded.sources if loaded else path
    assert source is not None
    from airlock.cli.backend import open_backend

    with open_backend() as backend, ByteProgress(f"push {name}@{version}", quiet=quiet) as progress:
        result = backend.push(
            source,
            name=name,
            version=version,
            notes=notes_value,
            datasets=datasets,
            components=components,
            parent=parent,
            metrics=metrics,
            code=code,
            training_config=tc,
            allow_pickle=allow_pickle,
            repair=repair,
            on_start=progress.start,
            on_bytes=progress.advance,
        )
    if result.repaired:
        console.print(
            f"[green]repaired[/] {len(result.repaired)} damaged blob(s) from the pushed files: "
            + ", ".join(short(d) for d in result.repaired[:5])
        )
    if not result.created:
        console.print(
            f"{result.ref} already holds this content: nothing to do ({short(result.digest)})"
        )
        return
    console.print(
        f"pushed [bold]{result.ref}[/] {short(result.digest)}: {result.files} file(s), "
        f"{human_bytes(result.bytes_total)}, {human_bytes(result.bytes_new)} new, "
        f"in {result.seconds:.2f}s"
    )
    if result.manifest.has_pickle:
        err_console.print("[bold red]warning:[/] this release contains pickle-based files")


@handle_errors
def ls(
    model: Annotated[str | None, typer.Argument(help="List this model's releases.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> None:
    """List models, or the releases of one model (a page at a time)."""
    from rich.table import Table

    from airlock.cli import render
    from airlock.cli.backend import open_backend

    with open_backend() as backend:
        if model is None:
            page = backend.models(limit=limit, cursor=cursor)
            models = list(page.items)
            more_hint(page.next_cursor)
            if as_json:
                console.print_json(data=[{"name": m.name, "releases": m.releases} for m in models])
                return
            if not models:
                console.print(
                    "no models yet: [bold]airlock push PATH --name NAME --version 1.0.0[/]"
                )
                return
            t = Table("model", "releases", "aliases")
            for m in models:
                names = [f"{alias}→{version}" for alias, version in m.aliases]
                t.add_row(m.name, str(m.releases), ", ".join(names))
            console.print(t)
            return
        release_page = backend.releases(model, limit=limit, cursor=cursor)
        rows = list(release_page.items)
        more_hint(release_page.next_cursor)
        if as_json:
            console.print_json(
                data=[{"ref": r.ref, "digest": r.digest, "aliases": list(r.aliases)} for r in rows]
            )
            return
        console.print(render.release_listing_table(model, rows))


@handle_errors
def show(
    ref: Annotated[
        str, typer.Argument(help="chat@1.2.0, chat@production, chat, or a digest prefix.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show a release: its bill of materials, lineage, notes and model-file summary."""
    from airlock.cli import render
    from airlock.cli.backend import open_backend
    from airlock.cli.governance_cmd import governance_view

    with open_backend() as backend:
        view = backend.show(ref)
        governance = None if as_json else backend.governance().summary(view.row.ref)
    if governance is None:
        console.print_json(data={**view.manifest.to_json_dict(), "digest": view.row.digest})
        return
    console.print(render.release_view(view))
    extra = governance_view(governance)
    if extra is not None:
        console.print(extra)


@handle_errors
def diff(
    old: Annotated[str, typer.Argument(help="The earlier release.")],
    new: Annotated[str, typer.Argument(help="The later release.")],
    markdown: Annotated[bool, typer.Option(help="Print Markdown release notes.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What changed between two releases: files, components, lineage, metrics, notes."""
    from airlock.cli import render
    from airlock.cli.backend import open_backend
    from airlock.cli.governance_cmd import eval_comparison_view
    from airlock.core.diff import render_markdown

    evals = None
    with open_backend() as backend:
        result, _, b = backend.diff(old, new)
        if not (markdown or as_json):
            evals = backend.governance().eval_comparison(old, new)
    if markdown:
        typer.echo(render_markdown(result, b))
    elif as_json:
        import dataclasses

        typer.echo(json.dumps(dataclasses.asdict(result), default=str, indent=2))
    else:
        console.print(render.diff_view(result))
        table = eval_comparison_view(evals, result.old, result.new) if evals else None
        if table is not None:
            console.print(table)


@handle_errors
def pull(
    ref: Annotated[str, typer.Argument(help="Release to materialise.")],
    dest: Annotated[Path, typer.Argument(help="New (or empty) destination folder.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write a release's files to DEST, verifying every byte (all or nothing)."""
    from airlock.cli.backend import open_backend

    with open_backend() as backend, ByteProgress(f"pull {ref}", quiet=quiet) as progress:
        result = backend.pull(ref, dest, on_start=progress.start, on_bytes=progress.advance)
    console.print(
        f"pulled {result.ref} into {result.dest} ({result.files} file(s), {human_bytes(result.bytes)})"
    )


@handle_errors
def verify(
    ref: Annotated[
        str | None, typer.Argument(help="Only this release (default: the whole store).")
    ] = None,
    repair: Annotated[
        Path | None,
        typer.Option(
            "--repair",
            metavar="PATH",
            help="Replace damaged or missing blobs from the files under PATH that hash to them.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Re-hash stored blobs; name every damaged or missing blob and the releases using it."""
    from rich.table import Table

    from airlock.cli.backend import open_backend

    if repair is not None:
        _repair(ref, repair)
        return
    with open_backend() as backend, ByteProgress("verify", quiet=quiet) as progress:
        report = backend.verify(ref, on_start=progress.start, on_bytes=progress.advance)
        bad_signatures = 0
        if ref is not None:
            bad_signatures = _signature_lines(backend.governance().signatures(ref))
    if report.ok:
        console.print(
            f"[green]ok[/]: {report.checked} blob(s), {human_bytes(report.bytes)} verified"
        )
        if bad_signatures:
            err_console.print(f"[bold red]error:[/] {bad_signatures} signature(s) do not verify")
            raise typer.Exit(code=1)
        return
    t = Table("problem", "blob", "used by")
    for digest, users in report.damaged.items():
        t.add_row("[red]damaged[/]", digest, "\n".join(users) or "(no release)")
    for digest, users in report.missing.items():
        t.add_row("[red]missing[/]", digest, "\n".join(users) or "(no release)")
    for ref_, why in report.tampered.items():  # catalog rows that are not what was pushed
        t.add_row("[red]tampered[/]", ref_, why)
    console.print(t)
    if report.tampered:
        err_console.print(f"[bold red]error:[/] {len(report.tampered)} tampered release(s)")
    err_console.print(
        f"[bold red]error:[/] {len(report.damaged)} damaged and {len(report.missing)} missing blob(s)"
    )
    err_console.print(
        "[dim]hint:[/] run `airlock verify --repair FOLDER` with the original files, "
        "or restore the store from a backup"
    )
    raise typer.Exit(code=1)


def _signature_lines(checks: Sequence[SignatureCheck]) -> int:
    """Print REF's re-checked signatures (airlock and OpenSSF), one line each; count the bad."""
    for c in checks:
        state = "[green]valid[/]" if c.valid else "[bold red]invalid[/]"
        console.print(f"signature {state}: {c.key_name or c.key_id}: {c.why}")
    return sum(not c.valid for c in checks)


def _repair(ref: str | None, source: Path) -> None:
    from rich.table import Table

    from airlock.services.repair import repair_store

    with workspace() as ws:
        report = repair_store(ws, source, actor=actor(ws), ref=ref)
    if not report.repaired and report.ok:
        console.print("[green]ok[/]: no damaged or missing blob, nothing to repair")
        return
    t = Table("blob", "used by", "result")
    for digest, users in report.repaired.items():
        t.add_row(digest, "\n".join(users) or "(no release)", "[green]repaired[/]")
    for digest, users in report.unrepaired.items():
        t.add_row(digest, "\n".join(users) or "(no release)", "[red]no good copy found[/]")
    console.print(t)
    if report.repaired:
        console.print(
            f"[green]repaired[/] {len(report.repaired)} blob(s) (audit event {report.event_seq})"
        )
    if not report.ok:
        err_console.print(
            f"[bold red]error:[/] {len(report.unrepaired)} blob(s) still damaged or missing: "
            f"no file under {source} hashes to them"
        )
        err_console.print(
            "[dim]hint:[/] point --repair at the original files, or restore from a backup"
        )
        raise typer.Exit(code=1)

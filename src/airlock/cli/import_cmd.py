"""``airlock import``: releases from an OCI image layout (``--oci DIR``) or from MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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

import_app = typer.Typer(
    help="Import releases: from an OCI image layout (`--oci DIR`) or from MLflow (`mlflow`).",
    invoke_without_command=True,
    no_args_is_help=False,
)

AllowPickle = Annotated[
    bool,
    typer.Option(help="Accept pickle-based weights (.bin/.pt/.pkl/.ckpt); flagged unsafe."),
]


@import_app.callback()
@handle_errors
def import_oci(
    ctx: typer.Context,
    oci: Annotated[
        Path | None,
        typer.Option(
            "--oci",
            metavar="DIR",
            help="OCI image layout to import (written by `airlock export --oci` or any "
            "ModelPack tool with raw layers).",
        ),
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="Which image of the layout (its tag), if it holds several.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Model name (default: from the layout)."),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", "-v", help="Semantic version (default: from the layout)."),
    ] = None,
    allow_pickle: AllowPickle = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Import a release from an OCI image layout (every blob verified), or run a subcommand."""
    from airlock.errors import InvalidInput

    if ctx.invoked_subcommand is not None:
        if oci is not None:
            raise InvalidInput(
                f"--oci cannot be combined with `import {ctx.invoked_subcommand}`",
                hint="run them one at a time",
            )
        return
    if oci is None:
        raise InvalidInput(
            "say what to import from",
            hint="`airlock import --oci DIR` or `airlock import mlflow --tracking-uri URI`",
        )
    from airlock.core.digest import short
    from airlock.services.oci_layout import import_oci as run_import

    with workspace() as ws, ByteProgress(f"import {oci}", quiet=quiet) as progress:
        result = run_import(
            ws,
            oci,
            actor=actor(ws),
            tag=tag,
            name=name,
            version=version,
            allow_pickle=allow_pickle,
            on_start=progress.start,
            on_bytes=progress.advance,
        )
    if not result.created:
        console.print(
            f"{result.ref} already holds this content: nothing to do ({short(result.digest)})"
        )
    else:
        console.print(
            f"imported [bold]{result.ref}[/] {short(result.digest)}: {result.files} file(s), "
            f"{human_bytes(result.bytes_total)}, every blob verified"
        )
    if result.source_digest is None:
        return
    if result.same_release:
        if result.created:
            console.print(
                f"  the same release as the exported {result.source_ref} (same digest): "
                f"its author stays {result.author}; the audit log records this import as yours"
            )
    else:
        console.print(
            f"  same content as the exported {result.source_ref} {short(result.source_digest)}; "
            "a new release digest (a new name or version, or this version already held "
            "the content: made here)"
        )


@import_app.command("mlflow")
@handle_errors
def import_mlflow(
    tracking_uri: Annotated[
        str,
        typer.Option(help="MLflow tracking URI, e.g. sqlite:///mlflow.db or http://host:5000."),
    ],
    model: Annotated[
        str | None, typer.Option(help="Only this registered model (default: all of them).")
    ] = None,
    registry_uri: Annotated[
        str | None, typer.Option(help="MLflow model registry URI (default: the tracking URI).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Airlock model name for --model (default: derived)."),
    ] = None,
    allow_pickle: AllowPickle = False,
) -> None:
    """Import MLflow registered models: versions as releases, aliases, run params and metrics.

    Version N of model M becomes the release m@N.0.0 (files with digests; the run's params
    as training config, its metrics as metrics, version N-1 as parent); each alias is moved
    to its current target. Running it again imports only what is new.
    """
    from rich.table import Table

    from airlock.core.digest import short
    from airlock.services.mlflow_import import import_mlflow as run_import

    with workspace() as ws:
        report = run_import(
            ws,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            model=model,
            name=name,
            actor=actor(ws),
            allow_pickle=allow_pickle,
            on_version=lambda m, n: err_console.print(f"[dim]MLflow {m} version {n}[/]"),
        )
    if report.versions:
        t = Table("MLflow model", "version", "release", "digest", "files", "size", "result")
        for v in report.versions:
            t.add_row(
                v.mlflow_model,
                str(v.mlflow_version),
                v.ref,
                short(v.digest),
                str(v.files),
                human_bytes(v.bytes_total),
                "[green]imported[/]" if v.created else "unchanged",
            )
        console.print(t)
    if report.aliases:
        t = Table("alias", "points at", "result")
        for a in report.aliases:
            result = "[green]moved[/]" if a.moved else "unchanged"
            if a.blocked:
                result = f"[red]blocked[/]: {a.blocked}"
            t.add_row(f"{a.model}@{a.alias}", a.ref, result)
        console.print(t)
    if not report.versions:
        console.print("no registered model versions found in MLflow")
    elif report.nothing_new:
        console.print("nothing new: every version and alias was already imported")
    else:
        console.print(
            f"imported {report.new_releases} release(s), moved {report.moved_aliases} alias(es)"
        )

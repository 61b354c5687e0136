"""``airlock export``: a release as a CNCF ModelPack OCI image layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airlock.cli.common import ByteProgress, console, handle_errors, human_bytes, workspace


@handle_errors
def export(
    ref: Annotated[str, typer.Argument(help="Release to export: chat@1.2.0, chat@production...")],
    oci: Annotated[
        Path,
        typer.Option(
            "--oci",
            metavar="DIR",
            help="OCI image layout folder to write (new, empty, or an existing layout to add to).",
        ),
    ],
    tag: Annotated[
        str | None,
        typer.Option(
            help="Tag (org.opencontainers.image.ref.name) of the image; default: the version."
        ),
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(
            help="Model family for the ModelPack config, e.g. llama3 (default: from GGUF)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Export a release as a CNCF ModelPack OCI image layout (one raw layer per file).

    Any OCI tool reads it, e.g. `skopeo inspect oci:DIR:TAG` or `skopeo copy
    oci:DIR:TAG docker://registry/chat:1.2.0`; `airlock import --oci DIR` reads it back.
    """
    from airlock.core.digest import short
    from airlock.services.oci_layout import export_oci

    with workspace() as ws, ByteProgress(f"export {ref}", quiet=quiet) as progress:
        result = export_oci(
            ws,
            ref,
            oci,
            tag=tag,
            family=family,
            on_start=progress.start,
            on_bytes=progress.advance,
        )
    console.print(
        f"exported [bold]{result.ref}[/] {short(result.release_digest)} to "
        f"{result.dest}:{result.tag}: {result.layers} layer(s), "
        f"{human_bytes(result.bytes_total)}, {human_bytes(result.bytes_written)} written"
    )
    console.print(f"  image manifest {result.image_digest}")

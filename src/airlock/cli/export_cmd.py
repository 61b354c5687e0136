"""``airlock export``: a release as a CNCF ModelPack OCI image layout, optionally pushed."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from airlock.cli.common import ByteProgress, console, handle_errors, human_bytes, workspace


@handle_errors
def export(
    ref: Annotated[str, typer.Argument(help="Release to export: chat@1.2.0, chat@production...")],
    oci: Annotated[
        Path | None,
        typer.Option(
            "--oci",
            metavar="DIR",
            help="OCI image layout folder to write (new, empty, or an existing layout to add to).",
        ),
    ] = None,
    push: Annotated[
        str | None,
        typer.Option(
            "--push",
            metavar="HOST/REPO[:TAG]",
            help="Also push the image to an OCI registry, e.g. 127.0.0.1:5000/chat (needs the "
            "oci extra).",
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Talk plain HTTP to the registry (a loopback registry).")
    ] = False,
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

    Any OCI tool reads it, e.g. `skopeo inspect --raw oci:DIR:TAG`; `airlock import --oci
    DIR` reads it back. With --push the image also goes to a registry (without --oci, the
    layout is written to a temporary folder first).
    """
    from airlock.core.digest import short
    from airlock.errors import InvalidInput
    from airlock.services.oci_layout import export_oci

    if oci is None and push is None:
        raise InvalidInput("say where to export to", hint="give --oci DIR and/or --push HOST/REPO")
    with contextlib.ExitStack() as stack:
        folder = oci
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="airlock-oci-")))
        with workspace() as ws, ByteProgress(f"export {ref}", quiet=quiet) as progress:
            result = export_oci(
                ws,
                ref,
                folder,
                tag=tag,
                family=family,
                on_start=progress.start,
                on_bytes=progress.advance,
            )
        where = f"{result.dest}:{result.tag}" if oci is not None else "a temporary layout"
        console.print(
            f"exported [bold]{result.ref}[/] {short(result.release_digest)} to {where}: "
            f"{result.layers} layer(s), {human_bytes(result.bytes_total)}, "
            f"{human_bytes(result.bytes_written)} written"
        )
        console.print(f"  image manifest {result.image_digest}")
        if push is not None:
            from airlock.services.oci_push import push_image

            with ByteProgress(f"push {push}", quiet=quiet) as progress:
                pushed = push_image(
                    folder,
                    push,
                    tag=result.tag,
                    insecure=insecure,
                    on_start=progress.start,
                    on_bytes=progress.advance,
                )
            console.print(
                f"pushed [bold]{pushed.target}[/] {pushed.digest}: {pushed.blobs} blob(s), "
                f"{human_bytes(pushed.bytes_total)}"
            )

"""Push an image of an OCI layout to a registry (``pip install 'airlock[oci]'``: oras).

The blobs go up with the ``oras`` client (chunked uploads; a blob the registry
already holds is skipped); the image manifest is put as the exact bytes of the
layout, so the registry names it by the same digest as the layout does.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.core import modelpack as mp
from airlock.core.digest import Digest, hex_of
from airlock.core.limits import quoted
from airlock.errors import AirlockError, Forbidden, InvalidInput, ServiceUnavailable

ProgressFn = Callable[[int], None]
_HINT = "install the extra: pip install 'airlock[oci]'"
_TARGET_RE = re.compile(
    r"^(?P<host>[A-Za-z0-9.-]+(?::[0-9]{1,5})?)/(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?$"
)
_CHUNK = 16 << 20


@dataclass(frozen=True, slots=True)
class PushedImage:
    target: str  # host/repository:tag
    digest: Digest  # the image manifest's digest, the same in the layout and the registry
    blobs: int
    bytes_total: int


def parse_target(text: str, default_tag: str) -> tuple[str, str, str]:
    """``HOST[:PORT]/REPOSITORY[:TAG]`` as (host, repository, tag)."""
    m = _TARGET_RE.match(text)
    if m is None:
        raise InvalidInput(
            f"invalid registry target {quoted(text)}",
            hint="write it as HOST[:PORT]/REPOSITORY[:TAG], e.g. 127.0.0.1:5000/chat:1.2.0",
        )
    return m["host"], m["repo"], m["tag"] or default_tag


def push_image(
    layout: Path,
    target: str,
    *,
    tag: str,
    insecure: bool = False,
    on_start: ProgressFn | None = None,
    on_bytes: ProgressFn | None = None,
) -> PushedImage:
    """Push the image tagged ``tag`` in ``layout`` to ``target`` (its tag, or ``tag``)."""
    host, repo, remote_tag = parse_target(target, tag)
    entries = mp.parse_index((layout / mp.INDEX_FILE).read_bytes())
    chosen = mp.pick_manifest(entries, tag)
    image_bytes = _blob(layout, chosen.digest).read_bytes()
    image = mp.parse_image_manifest(image_bytes)
    blobs = {d.digest: d for d in (image.config, *image.layers)}
    total = sum(d.size for d in blobs.values())
    if on_start is not None:
        on_start(total)
    registry, container = _client(host, repo, remote_tag, insecure)
    where = f"{host}/{repo}:{remote_tag}"
    _ping(f"{registry.prefix}://{host}/v2/", where, verify=not insecure)
    with _translated(where):
        for d in blobs.values():
            layer = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
            response = registry.upload_blob(
                str(_blob(layout, d.digest)), container, layer, do_chunked=True, chunk_size=_CHUNK
            )
            _check(response, f"upload of blob {d.digest}", where)
            if on_bytes is not None:
                on_bytes(d.size)
        response = registry.do_request(
            f"{registry.prefix}://{container.manifest_url()}",
            "PUT",
            data=image_bytes,
            headers={"Content-Type": mp.MEDIA_TYPE_MANIFEST},
        )
        _check(response, "upload of the image manifest", where)
        pushed = response.headers.get("Docker-Content-Digest")
    if pushed and pushed != chosen.digest:
        raise ServiceUnavailable(
            f"{where} stored the image manifest as {pushed}, not {chosen.digest}",
            hint="the registry rewrote the manifest: use an OCI-compliant registry",
        )
    return PushedImage(where, chosen.digest, len(blobs), total)


def _ping(url: str, where: str, *, verify: bool) -> None:
    """One quick request first: oras retries a refused connection for minutes."""
    import httpx

    try:
        status = httpx.get(url, timeout=10, verify=verify).status_code
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"cannot push to {where}: {type(exc).__name__}: {str(exc)[:200]}",
            hint="is the registry running and reachable? (--insecure for plain HTTP)",
        ) from exc
    if status not in {200, 401}:  # 401: the registry wants a login, which oras handles
        raise ServiceUnavailable(
            f"cannot push to {where}: {url} answered HTTP {status}, not an OCI registry API",
            hint="give the registry's host:port",
        )


def _blob(layout: Path, digest: Digest) -> Path:
    return layout / "blobs" / "sha256" / hex_of(digest)


def _client(host: str, repo: str, tag: str, insecure: bool) -> tuple[Any, Any]:
    try:
        import oras.container
        import oras.provider
    except ImportError as exc:
        raise ServiceUnavailable(
            f"pushing to a registry needs the oras package, which is not installed ({exc.name})",
            hint=_HINT,
        ) from exc
    registry = oras.provider.Registry(hostname=host, insecure=insecure)
    container = oras.container.Container(f"{host}/{repo}:{tag}")
    registry.auth.load_configs(container)  # credentials from ~/.docker/config.json, if any
    return registry, container


def _check(response: Any, what: str, where: str) -> None:
    status = int(response.status_code)
    if status in {401, 403}:
        raise Forbidden(
            f"{where} refused the {what} ({status})",
            hint="log in to the registry (docker login / ~/.docker/config.json)",
        )
    if status >= 300:
        text = (getattr(response, "text", "") or "")[:300]
        raise ServiceUnavailable(f"{where} refused the {what}: HTTP {status} {text}".rstrip())


@contextlib.contextmanager
def _translated(where: str) -> Iterator[None]:
    """Connection failures (requests, oras) as ``ServiceUnavailable`` naming the registry."""
    try:
        yield
    except AirlockError:
        raise
    except Exception as exc:
        text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise ServiceUnavailable(
            f"cannot push to {where}: {text}",
            hint="is the registry running and reachable? (--insecure for plain HTTP)",
        ) from exc

"""Load a release for serving: verify every byte, pick its runtime, parse its components.

``ReleaseLoader(store, resolve).load("chat@1.2.0")``:

1. ``resolve`` (given by the services layer) names the release's digest; the
   manifest is read *from the blob store* by that digest and re-hashed, so an
   edited catalog row cannot change what is served.
2. Every file of the manifest is read through the verifying store — also the
   files the runtime does not need — so a single changed byte anywhere refuses
   the release with ``IntegrityError``.
3. The runtime comes from ``config.json``: ``"runtime": "builtin" | "upstream" |
   "transformers"`` (a Hugging Face ``model_type`` or an ``adapter_config.json``
   means transformers). A release without a model of its own whose
   ``base_model`` component names another release serves that release's model
   with its own components: changing only a prompt template or a safety policy
   is a new release that is servable as is.
4. Components: ``prompt_template``, ``decoding`` and ``safety_policy`` — a file
   of the release, a blob, or another release (whose own component of that role,
   or well-known file, is used).

``timeout_s`` in ``config.json`` bounds each call (default 60 s); ``faults``
injects failures (see :mod:`airlock.runtime.faults`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airlock.core.digest import Digest, short
from airlock.core.guardrails import SafetyPolicy, parse_safety_policy
from airlock.core.manifest import Component, Manifest, manifest_from_json
from airlock.core.prompting import (
    DecodingDefaults,
    PromptTemplate,
    parse_decoding_defaults,
    parse_prompt_template,
)
from airlock.errors import IntegrityError, InvalidInput, NotFound
from airlock.runtime.base import Runtime
from airlock.runtime.builtin import BuiltinRuntime
from airlock.runtime.builtin_model import FILES as BUILTIN_FILES
from airlock.runtime.builtin_model import BuiltinModel
from airlock.runtime.faults import FaultSpec, FaultyRuntime
from airlock.runtime.upstream import UpstreamConfig, UpstreamRuntime
from airlock.store.base import CHUNK, BlobStore

DEFAULT_TIMEOUT_S = 60.0
_COMPONENT_FILES = {
    "prompt_template": ("prompt_template.yaml", "prompt_template.json"),
    "decoding": ("decoding.yaml", "decoding.json"),
    "safety_policy": ("safety_policy.yaml", "safety_policy.json"),
}
_MAX_DEPTH = 8

ResolveFn = Callable[[str], tuple[str, Digest]]
"""``ref -> (canonical "name@version", release digest)``; raises NotFound."""


@dataclass(slots=True)
class LoadedRelease:
    """A release ready to serve: its runtime plus the components applied around it."""

    ref: str
    digest: Digest
    manifest: Manifest
    runtime: Runtime
    runtime_kind: str
    template: PromptTemplate | None = None
    decoding: DecodingDefaults | None = None
    safety: SafetyPolicy | None = None
    faults: FaultSpec = field(default_factory=FaultSpec)
    timeout_s: float = DEFAULT_TIMEOUT_S
    config: Mapping[str, Any] = field(default_factory=dict)
    _scratch: Path | None = None

    def take_scratch(self) -> Path | None:
        """Hand this release's scratch folder to a release built on it (which then owns
        and removes it); this one no longer does."""
        scratch, self._scratch = self._scratch, None
        return scratch

    async def aclose(self) -> None:
        try:
            await self.runtime.aclose()
        finally:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None


class ReleaseLoader:
    def __init__(
        self,
        store: BlobStore,
        resolve: ResolveFn,
        *,
        scratch_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.resolve = resolve
        self.scratch_dir = scratch_dir
        self.env = env

    # -- manifests and bytes -----------------------------------------------------
    def manifest(self, ref: str) -> tuple[str, Digest, Manifest]:
        """The verified manifest of ``ref``, read from the store by the release digest."""
        canonical, digest = self.resolve(ref)
        try:
            data = self.store.read(digest)
        except NotFound as exc:
            raise IntegrityError(
                f"the manifest of {canonical} ({short(digest)}) is missing from the store",
                hint="run `airlock verify` to see which releases are damaged",
            ) from exc
        except IntegrityError as exc:
            raise IntegrityError(
                f"refusing to load {canonical}: its manifest blob is damaged ({exc.message})",
                hint="run `airlock verify` to see which releases are damaged",
            ) from exc
        manifest = manifest_from_json(data)
        if manifest.digest() != digest or manifest.ref != canonical:
            raise IntegrityError(
                f"refusing to load {canonical}: the stored manifest does not match its digest",
                hint="run `airlock verify`",
            )
        return canonical, digest, manifest

    def _read(self, ref: str, path: str, digest: Digest) -> bytes:
        try:
            return self.store.read(digest)
        except IntegrityError as exc:
            raise IntegrityError(
                f"refusing to load {ref}: file {path} is damaged ({exc.message})",
                hint=f"run `airlock verify {ref}` to see every damaged file",
            ) from exc
        except NotFound as exc:
            raise IntegrityError(
                f"refusing to load {ref}: file {path} ({short(digest)}) is missing from the store",
                hint=f"run `airlock verify {ref}`",
            ) from exc

    def _copy(self, ref: str, path: str, digest: Digest, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.store.open(digest) as reader, target.open("wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
        except IntegrityError as exc:
            target.unlink(missing_ok=True)
            raise IntegrityError(
                f"refusing to load {ref}: file {path} is damaged ({exc.message})",
                hint=f"run `airlock verify {ref}` to see every damaged file",
            ) from exc

    # -- loading -------------------------------------------------------------------
    def load(self, ref: str) -> LoadedRelease:
        """Verify and load ``ref`` (blocking: call it from a worker thread in async code)."""
        return self._load(ref, depth=0)

    def _load(self, ref: str, *, depth: int) -> LoadedRelease:
        if depth > _MAX_DEPTH:
            raise InvalidInput(f"{ref}: base_model chain is deeper than {_MAX_DEPTH} releases")
        canonical, digest, manifest = self.manifest(ref)
        files = {f.path: f for f in manifest.files}
        small: dict[str, bytes] = {}
        config: dict[str, Any] = {}
        if "config.json" in files:
            small["config.json"] = self._read(canonical, "config.json", files["config.json"].digest)
            config = _json(small["config.json"], f"{canonical}: config.json")
        kind = _runtime_kind(config, files)
        base = manifest.components.get("base_model")
        scratch: Path | None = None
        try:
            if kind == "transformers":
                scratch = Path(tempfile.mkdtemp(prefix="airlock-hf-", dir=self.scratch_dir))
                for entry in manifest.files:
                    self._copy(canonical, entry.path, entry.digest, scratch / entry.path)
                runtime = self._transformers(canonical, manifest, scratch, depth)
            else:
                for entry in manifest.files:  # verify every byte, needed or not
                    if entry.path not in small:
                        small[entry.path] = self._read(canonical, entry.path, entry.digest)
                if kind == "builtin":
                    runtime = self._builtin(canonical, small)
                elif kind == "upstream":
                    runtime = UpstreamRuntime(UpstreamConfig.from_config(config, self.env))
                else:  # inherit the base release's model
                    if base is None or base.ref is None:
                        raise InvalidInput(
                            f"{canonical} has no model: no config.json with a runtime and no "
                            "base_model release",
                            hint='add config.json with "runtime": "builtin" | "upstream" | '
                            '"transformers", or --component base_model=NAME@VERSION',
                        )
                    inherited = self._load(base.ref, depth=depth + 1)
                    runtime = inherited.runtime
                    kind = inherited.runtime_kind
                    scratch = inherited.take_scratch()
                    config = {**inherited.config, **config}
            faults = FaultSpec.from_config(config)
            if faults.active:
                runtime = FaultyRuntime(runtime, faults)
            loaded = LoadedRelease(
                ref=canonical,
                digest=digest,
                manifest=manifest,
                runtime=runtime,
                runtime_kind=kind,
                template=self._component(canonical, manifest, "prompt_template", small, depth),
                decoding=self._component(canonical, manifest, "decoding", small, depth),
                safety=self._component(canonical, manifest, "safety_policy", small, depth),
                faults=faults,
                timeout_s=_timeout(config, canonical),
                config=config,
                _scratch=scratch,
            )
        except BaseException:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            raise
        return loaded

    def _builtin(self, ref: str, files: Mapping[str, bytes]) -> Runtime:
        missing = [n for n in BUILTIN_FILES if n not in files]
        if missing:
            raise InvalidInput(
                f"{ref}: a builtin release needs {', '.join(BUILTIN_FILES)}; missing "
                f"{', '.join(missing)}",
                hint="train one with `airlock model train --corpus FILE --out DIR` and push DIR",
            )
        return BuiltinRuntime(BuiltinModel.load_from_bytes({n: files[n] for n in BUILTIN_FILES}))

    def _transformers(self, ref: str, manifest: Manifest, folder: Path, depth: int) -> Runtime:
        from airlock.runtime.hf import TransformersRuntime

        if (folder / "adapter_config.json").is_file():
            base = manifest.components.get("base_model")
            if base is None or base.ref is None:
                raise InvalidInput(
                    f"{ref} is a LoRA adapter but names no base model release",
                    hint="push it with --component base_model=NAME@VERSION",
                )
            base_ref, _, base_manifest = self.manifest(base.ref)
            base_dir = folder / ".base"
            for entry in base_manifest.files:
                self._copy(base_ref, entry.path, entry.digest, base_dir / entry.path)
            return TransformersRuntime(base_dir, adapter_dir=folder)
        return TransformersRuntime(folder)

    def _component(
        self,
        ref: str,
        manifest: Manifest,
        role: str,
        files: Mapping[str, bytes],
        depth: int,
    ) -> Any:
        data = self._component_bytes(ref, manifest, role, files, depth)
        if data is None:
            return None
        parse = {
            "prompt_template": parse_prompt_template,
            "decoding": parse_decoding_defaults,
            "safety_policy": parse_safety_policy,
        }[role]
        try:
            return parse(data)
        except InvalidInput as exc:
            raise InvalidInput(f"{ref}: component {role}: {exc.message}", hint=exc.hint) from exc

    def _component_bytes(
        self,
        ref: str,
        manifest: Manifest,
        role: str,
        files: Mapping[str, bytes],
        depth: int,
    ) -> bytes | None:
        comp: Component | None = manifest.components.get(role)
        if comp is None:
            return None
        if comp.path is not None:
            if comp.path in files:
                return files[comp.path]
            entry = manifest.file(comp.path)
            assert entry is not None  # the manifest validator guarantees it
            return self._read(ref, comp.path, entry.digest)
        if comp.digest is not None:
            return self._read(ref, f"component {role}", comp.digest)
        assert comp.ref is not None
        if depth > _MAX_DEPTH:
            raise InvalidInput(f"{ref}: component {role} chain is too deep")
        other_ref, _, other = self.manifest(comp.ref)
        if role in other.components:
            return self._component_bytes(other_ref, other, role, {}, depth + 1)
        for name in _COMPONENT_FILES[role]:
            entry = other.file(name)
            if entry is not None:
                return self._read(other_ref, name, entry.digest)
        raise InvalidInput(
            f"{ref}: component {role} names {other_ref}, which has no {role}",
            hint=f"that release needs a {role} component or a {_COMPONENT_FILES[role][0]} file",
        )


def _runtime_kind(config: Mapping[str, Any], files: Mapping[str, Any]) -> str:
    declared = config.get("runtime")
    if declared is not None:
        if declared not in ("builtin", "upstream", "transformers"):
            raise InvalidInput(
                f"config.json: unknown runtime {declared!r}",
                hint="use builtin, upstream or transformers",
            )
        return str(declared)
    if "adapter_config.json" in files or "model_type" in config:
        return "transformers"
    return "inherit"


def _timeout(config: Mapping[str, Any], ref: str) -> float:
    value = config.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput(f"{ref}: config.json timeout_s must be a positive number")
    return float(value)


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value


__all__ = ["DEFAULT_TIMEOUT_S", "LoadedRelease", "ReleaseLoader", "ResolveFn"]

"""Release signatures: ed25519 keys, trusted public keys, signing and verification.

``airlock key generate`` writes a key pair; an admin trusts the public half
(``airlock key trust``); ``airlock sign REF --key KEY`` signs the release's
in-toto statement (see :mod:`airlock.core.signing`) and stores the bundle with
the release. A signature counts when it verifies with a key that is trusted and
not revoked, and its statement matches the release digest and every file digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import Connection

from airlock import audit
from airlock.catalog import governance as sql
from airlock.core import openssf_signing, signing
from airlock.core.manifest import Manifest
from airlock.core.names import check_name
from airlock.core.paging import Page, cursor_time, decode_cursor, page_limit, page_of
from airlock.core.policy import SignatureFact
from airlock.core.records import Release, SignatureRecord, TrustedKey
from airlock.core.roles import Action
from airlock.errors import Conflict, InvalidInput, NotFound
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.ingest import scan_folder
from airlock.services.workspace import Workspace

_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def key_id_of(key: Ed25519PublicKey) -> str:
    return signing.key_id(public_raw(key))


def generate_key(path: Path) -> tuple[Path, Path, str]:
    """Write a new ed25519 private key (PEM, 0600) at ``path`` and its public key at ``path.pub``."""
    pub_path = path.with_name(path.name + ".pub")
    for p in (path, pub_path):
        if p.exists():
            raise Conflict(
                f"{p} already exists", hint="choose another path; keys are never overwritten"
            )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    pub_path.write_text(public_pem(key.public_key()), encoding="ascii")
    return path, pub_path, key_id_of(key.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise NotFound(
            f"no key file at {path}", hint="create one with `airlock key generate PATH`"
        ) from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"{path} is not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{path} is not an ed25519 key", hint="Airlock signs with ed25519 keys")
    return key


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("not an ed25519 public key", hint="Airlock verifies ed25519 signatures")
    return key


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    key_id: str
    key_name: str | None
    signed_by: str | None
    at: datetime | None
    valid: bool
    why: str

    def fact(self) -> SignatureFact:
        return SignatureFact(self.key_id, self.key_name, self.valid, self.why)


@dataclass(frozen=True, slots=True)
class SignResult:
    ref: str
    key_id: str
    key_name: str | None
    created: bool
    bundle: str


@dataclass(frozen=True, slots=True)
class AddedSignature:
    """A stored signature bundle, and whether it counts now (valid with a trusted key)."""

    result: SignResult
    trusted: bool


def airlock_bundle(
    manifest: Manifest, release_digest: str, key: Ed25519PrivateKey
) -> tuple[str, str]:
    """(key id, bundle JSON): the release's in-toto statement signed with ``key``.

    Pure: the signer needs only the manifest and its digest, so a remote ``airlock sign``
    signs on the signer's machine and sends the bundle, never the key.
    """
    kid = key_id_of(key.public_key())
    payload = signing.statement_payload(signing.statement_for(manifest, release_digest))
    signature = key.sign(signing.pae(signing.PAYLOAD_TYPE, payload))
    return kid, json.dumps(signing.make_bundle(payload, signature, kid), indent=2, sort_keys=True)


def check_bundle(
    bundle: str,
    *,
    trusted: Mapping[str, TrustedKey],
    manifest: Manifest | None = None,
    release_digest: str | None = None,
    files: Mapping[str, str] | None = None,
    signed_by: str | None = None,
    at: datetime | None = None,
) -> SignatureCheck:
    """Verify one bundle against the trusted keys and the release (or a folder's files).

    A bundle in the OpenSSF model-signing format (EC key or certificate) is checked
    against the files only (see :mod:`airlock.services.openssf_signatures`).
    """
    if openssf_signing.is_openssf_bundle(bundle):
        from airlock.services.openssf_signatures import check, release_files

        got = check(
            bundle,
            trusted=trusted,
            files=release_files(manifest, bundle) if manifest is not None else files or {},
        )
        return SignatureCheck(got.key_id, got.key_name, signed_by, at, got.valid, got.why)
    try:
        parsed = signing.parse_bundle(bundle)
    except InvalidInput as exc:
        return SignatureCheck("?", None, signed_by, at, False, exc.message)
    row = trusted.get(parsed.key_id)
    name = row.name if row else None

    def result(valid: bool, why: str) -> SignatureCheck:
        return SignatureCheck(parsed.key_id, name, signed_by, at, valid, why)

    if row is None:
        return result(False, f"key {parsed.key_id[:19]} is not trusted (`airlock key trust`)")
    if row.revoked_at is not None:
        return result(False, f"key {row.name} was revoked on {row.revoked_at:%Y-%m-%d}")
    if parsed.payload_type != signing.PAYLOAD_TYPE:
        return result(False, f"unexpected payload type {parsed.payload_type!r}")
    try:
        load_public_key(row.public_key).verify(parsed.signature, parsed.signed_bytes)
    except InvalidSignature:
        return result(False, f"the signature does not verify with key {row.name}")
    try:
        statement = parsed.statement()
    except InvalidInput as exc:
        return result(False, exc.message)
    problems = signing.statement_problems(
        statement, manifest=manifest, release_digest=release_digest, files=files
    )
    if problems:
        return result(False, "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else ""))
    return result(True, f"valid, signed with {row.name}")


class Signatures:
    """Trusted keys and release signatures. Release methods take a resolved ``Release``
    (``Governance`` offers the same operations by reference)."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.db = workspace.db

    # -- trusted keys --------------------------------------------------------------------
    def trust(self, public_key: str, *, name: str, actor: Actor) -> TrustedKey:
        from airlock.services.openssf_signatures import trusted_material

        check_name(name, "key name")
        material = trusted_material(public_key)  # ed25519 or EC public key, or a CA certificate
        kid = material.key_id
        authorize(self.db, actor, Action.KEY_TRUST, f"key:{name}")
        now = datetime.now(UTC)
        with self.db.write() as conn:
            existing = sql.key(conn, kid)
            if existing is not None:
                if existing.revoked_at is not None:
                    raise Conflict(
                        f"key {kid[:19]} was revoked as {existing.name!r}; a revoked key stays revoked",
                        hint="generate a new key pair",
                    )
                return existing
            if sql.key_by_name(conn, name) is not None:
                raise Conflict(
                    f"a key named {name!r} is already trusted", hint="choose another name"
                )
            sql.insert_key(
                conn, key_id=kid, name=name, public_key=material.pem, at=now, by=actor.name
            )
            audit.append(
                conn,
                actor=actor.name,
                action="key.trust",
                subject=f"key:{name}",
                details={"key_id": kid, "kind": material.kind},
            )
            row = sql.key(conn, kid)
        assert row is not None
        return row

    def revoke_key(self, name_or_id: str, *, actor: Actor, reason: str) -> TrustedKey:
        authorize(self.db, actor, Action.KEY_REVOKE, f"key:{name_or_id}")
        with self.db.write() as conn:
            row = sql.key_by_name(conn, name_or_id) or sql.key(conn, name_or_id)
            if row is None:
                raise NotFound(f"no trusted key {name_or_id!r}", hint="run `airlock key ls`")
            if sql.revoke_key(conn, row.key_id, by=actor.name, at=datetime.now(UTC)):
                audit.append(
                    conn,
                    actor=actor.name,
                    action="key.revoke",
                    subject=f"key:{row.name}",
                    details={"key_id": row.key_id, "reason": reason},
                )
            updated = sql.key(conn, row.key_id)
        assert updated is not None
        return updated

    def keys(self) -> list[TrustedKey]:
        with self.db.read() as conn:
            return sql.keys(conn)

    def key_page(self, *, limit: int | None = None, cursor: str | None = None) -> Page[TrustedKey]:
        """``keys`` a page at a time, in the order they were added (keyset on the time and
        key id)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=2)
        key = (cursor_time(after[0]), str(after[1])) if after else None
        with self.db.read() as conn:
            rows = sql.keys(conn, after=key, limit=size + 1)
        return page_of(rows, size, lambda k: [k.added_at.isoformat(), k.key_id])

    # -- signing -------------------------------------------------------------------------
    def sign(self, release: Release, key: Ed25519PrivateKey, *, actor: Actor) -> SignResult:
        authorize(self.db, actor, Action.RELEASE_SIGN, release.ref)
        kid, bundle = airlock_bundle(release.manifest(), release.digest, key)
        return self.record(release, kid, bundle, actor=actor)

    def add(self, release: Release, bundle: str, *, actor: Actor) -> AddedSignature:
        """Store a bundle signed elsewhere (``airlock sign`` against a server: the private
        key never leaves the signer's machine), in either format.

        Refused (``InvalidInput``) when it is not a signature over this release's digest
        and files, or when it names a trusted key and does not verify with it. A bundle
        of a key not (yet) trusted is kept: it counts once an admin trusts the key.
        """
        authorize(self.db, actor, Action.RELEASE_SIGN, release.ref)
        manifest = release.manifest()
        with self.db.read() as conn:
            trusted = {k.key_id: k for k in sql.keys(conn)}
        if openssf_signing.is_openssf_bundle(bundle):
            from airlock.services.openssf_signatures import add_bundle

            return add_bundle(self, release, bundle, trusted=trusted, actor=actor)
        parsed = signing.parse_bundle(bundle)  # InvalidInput: not a bundle
        if parsed.payload_type != signing.PAYLOAD_TYPE:
            raise InvalidInput(f"unexpected payload type {parsed.payload_type!r}")
        problems = signing.statement_problems(
            parsed.statement(), manifest=manifest, release_digest=release.digest
        )
        if problems:
            raise InvalidInput(
                f"the signature is not over {release.ref}: " + "; ".join(problems[:3]),
                hint=f"sign the release as it is stored: `airlock sign {release.ref} --key KEY`",
            )
        checked = check_bundle(
            bundle, trusted=trusted, manifest=manifest, release_digest=release.digest
        )
        key = trusted.get(parsed.key_id)
        if not checked.valid and key is not None and key.revoked_at is None:
            raise InvalidInput(checked.why, hint="sign again with the private key of that key")
        return AddedSignature(
            self.record(release, parsed.key_id, bundle, actor=actor), checked.valid
        )

    def record(
        self,
        release: Release,
        kid: str,
        bundle: str,
        *,
        actor: Actor,
        fmt: str = "airlock",
        trust: tuple[str | None, bool] | None = None,
    ) -> SignResult:
        """Store ``bundle`` (made with key ``kid``) with the release, once per key, audited.

        ``trust`` (key name, trusted) when the signer's trust is not a trusted key of
        id ``kid`` (a certificate under a trusted CA).
        """
        with self.db.write() as conn:
            known = sql.key(conn, kid)
            name, trusted = trust or (
                known.name if known else None,
                bool(known and known.revoked_at is None),
            )
            for existing in sql.signatures_of(conn, release.id):
                if existing.key_id == kid:
                    return SignResult(release.ref, kid, name, False, existing.bundle)
            details = {"digest": release.digest, "key_id": kid, "key": name, "trusted": trusted}
            event = audit.append(
                conn,
                actor=actor.name,
                action="release.sign",
                subject=release.ref,
                details=details if fmt == "airlock" else {**details, "format": fmt},
            )
            sql.insert_signature(
                conn,
                release_id=release.id,
                release_digest=release.digest,
                key_id=kid,
                bundle=bundle,
                signed_by=actor.name,
                at=datetime.now(UTC),
                event_seq=event.seq,
            )
        return SignResult(release.ref, kid, name, True, bundle)

    # -- verification ----------------------------------------------------------------------
    def verify(self, release: Release) -> list[SignatureCheck]:
        with self.db.read() as conn:
            return release_signature_checks(conn, release)

    def bundles(self, release: Release) -> list[SignatureRecord]:
        with self.db.read() as conn:
            return sql.signatures_of(conn, release.id)

    def verify_folder(self, bundle: str, folder: Path) -> SignatureCheck:
        """Check a folder on disk (e.g. a pulled or downloaded model) against a bundle."""
        return check_folder(bundle, folder, self.keys())


def check_folder(bundle: str, folder: Path, keys: Sequence[TrustedKey]) -> SignatureCheck:
    """Check a folder on disk against a bundle and the trusted ``keys`` (from any catalog:
    a remote ``airlock signatures --bundle`` reads the server's keys, hashes here)."""
    digests = {}
    for f in scan_folder(folder):  # re-hashed every time: verification trusts no cache
        with f.path.open("rb") as fh:
            digests[f.rel] = hashlib.file_digest(fh, "sha256").hexdigest()
    return check_bundle(bundle, trusted={k.key_id: k for k in keys}, files=digests)


def release_signature_checks(conn: Connection, release: Release) -> list[SignatureCheck]:
    """Verify every stored signature of ``release`` (used by ``verify`` and by the policy gate)."""
    trusted = {k.key_id: k for k in sql.keys(conn)}
    manifest = release.manifest()
    return [
        check_bundle(
            s.bundle,
            trusted=trusted,
            manifest=manifest,
            release_digest=release.digest,
            signed_by=s.signed_by,
            at=s.at,
        )
        for s in sql.signatures_of(conn, release.id)
    ]

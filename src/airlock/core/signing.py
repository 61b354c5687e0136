"""What a release signature says, in the OpenSSF model-signing shape (pure: no keys, no I/O).

The signed payload is an in-toto Statement v1 with the model-signing v1.0
predicate: every file of the release as a resource (path, sha256), and one
subject whose digest is the SHA-256 over the resource digests in path order, as
``model_signing`` computes it. Airlock adds an ``airlock`` field to the
predicate that binds the statement to the release digest (the digest of the
whole manifest: components, lineage and notes included). Verifiers of the v1.0
predicate ignore fields they do not know, so ``model_signing`` tools can still
read the file list.

The statement travels in a DSSE envelope (signature over the DSSE
pre-authentication encoding), wrapped in a Sigstore-bundle-shaped JSON document
whose verification material is a public-key hint (the key id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airlock.core.digest import canonical_json, hex_of
from airlock.core.manifest import Manifest
from airlock.errors import InvalidInput

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def key_id(raw_public_key: bytes) -> str:
    """A public key's id: ``sha256:`` of its raw bytes."""
    return f"sha256:{hashlib.sha256(raw_public_key).hexdigest()}"


def root_digest(resources: list[dict[str, str]]) -> str:
    h = hashlib.sha256()
    for r in resources:
        h.update(bytes.fromhex(r["digest"]))
    return h.hexdigest()


def statement_for(manifest: Manifest, release_digest: str) -> dict[str, Any]:
    """The in-toto statement a signer signs for a release."""
    resources = [
        {"name": f.path, "algorithm": "sha256", "digest": hex_of(f.digest)}
        for f in sorted(manifest.files, key=lambda f: f.path)
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest.ref, "digest": {"sha256": root_digest(resources)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": [],
            },
            "resources": resources,
            "airlock": {"release": manifest.ref, "release_digest": release_digest},
        },
    }


def statement_of(payload: bytes) -> dict[str, Any]:
    """The in-toto statement a DSSE payload carries; InvalidInput when it is none."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"the signed payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("the signed payload is not an in-toto statement")
    return data


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature is computed over."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def make_bundle(payload: bytes, signature: bytes, kid: str) -> dict[str, Any]:
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": kid}},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": kid}],
        },
    }


def statement_payload(statement: Mapping[str, Any]) -> bytes:
    return canonical_json(dict(statement))


@dataclass(frozen=True, slots=True)
class ParsedBundle:
    key_id: str
    payload_type: str
    payload: bytes
    signature: bytes

    @property
    def signed_bytes(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def statement(self) -> dict[str, Any]:
        return statement_of(self.payload)


def parse_bundle(text: str | bytes) -> ParsedBundle:
    """Read a signature bundle; ``InvalidInput`` names what is malformed."""
    try:
        data = json.loads(text)
        env = data["dsseEnvelope"]
        sig = env["signatures"][0]
        kid = str(sig.get("keyid") or data["verificationMaterial"]["publicKey"]["hint"])
        return ParsedBundle(
            key_id=kid,
            payload_type=str(env["payloadType"]),
            payload=base64.b64decode(env["payload"], validate=True),
            signature=base64.b64decode(sig["sig"], validate=True),
        )
    except (
        json.JSONDecodeError,
        UnicodeDecodeError,
        KeyError,
        IndexError,
        TypeError,
        binascii.Error,
    ) as exc:
        raise InvalidInput(
            f"not a signature bundle ({type(exc).__name__}: {exc})",
            hint="a bundle is the JSON written by `airlock sign --out`",
        ) from exc


def statement_problems(
    statement: Mapping[str, Any],
    *,
    manifest: Manifest | None = None,
    release_digest: str | None = None,
    files: Mapping[str, str] | None = None,
) -> list[str]:
    """What in ``statement`` does not match the release (or a folder's ``files``: path -> hex)."""
    problems: list[str] = []
    if statement.get("_type") != STATEMENT_TYPE:
        problems.append(f"not an in-toto v1 statement ({statement.get('_type')!r})")
    if statement.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"unexpected predicate type {statement.get('predicateType')!r}")
    predicate = statement.get("predicate") or {}
    resources = predicate.get("resources") if isinstance(predicate, dict) else None
    if not isinstance(resources, list):
        return [*problems, "the statement lists no resources"]
    subjects = statement.get("subject") or [{}]
    claimed_root = (subjects[0].get("digest") or {}).get("sha256")
    try:
        signed = {str(r["name"]): str(r["digest"]) for r in resources}
        if claimed_root != root_digest(resources):
            problems.append("the subject digest does not match the listed resources")
    except (KeyError, TypeError, ValueError):
        return [*problems, "malformed resource list"]
    airlock = predicate.get("airlock") or {}
    if manifest is not None:
        if airlock.get("release") != manifest.ref:
            problems.append(f"signed for {airlock.get('release')!r}, not {manifest.ref}")
        files = {f.path: hex_of(f.digest) for f in manifest.files}
    if release_digest is not None and airlock.get("release_digest") != release_digest:
        problems.append(
            f"signed release digest {airlock.get('release_digest')} is not {release_digest}"
        )
    if files is not None:
        problems.extend(file_problems(signed, dict(files)))
    return problems


def file_problems(signed: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    out = []
    for path in sorted(set(signed) | set(actual)):
        if path not in actual:
            out.append(f"{path}: signed but missing")
        elif path not in signed:
            out.append(f"{path}: present but not signed")
        elif signed[path] != actual[path]:
            out.append(f"{path}: content differs from the signed digest")
    return out

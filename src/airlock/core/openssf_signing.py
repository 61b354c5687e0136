"""The OpenSSF model-signing v1.x signature format (pure: no keys, no I/O).

The ``model-signing`` package (``python -m model_signing``) writes ``model.sig``:
a Sigstore bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``) holding a
DSSE envelope over an in-toto Statement v1 with the predicate
``https://model_signing/signature/v1.0``::

    predicate.serialization  {"method": "files", "hash_type": "sha256",
                              "allow_symlinks": false, "ignore_paths": [...]}
    predicate.resources      [{"name": path, "algorithm": "sha256", "digest": hex}, ...]
    subject[0].digest.sha256 SHA-256 over the resource digests, in path order

With an elliptic-curve key the bundle's ``verificationMaterial.publicKey.hint``
is the hex SHA-256 of the public key's PEM (SubjectPublicKeyInfo); with a
certificate, ``verificationMaterial.x509CertificateChain.certificates`` holds
the signing certificate (DER, base64) followed by its chain. The signature is
ECDSA (DER) over the DSSE pre-authentication encoding, with SHA-256 for P-256,
SHA-384 for P-384 and SHA-512 for P-521.

Verifiers re-hash the folder, ignoring the paths listed in ``ignore_paths`` (a
path or anything under it) and git's files, and compare every file digest.
Airlock's own format (:mod:`airlock.core.signing`) uses the same predicate with
an ed25519 key and a ``sha256:``-prefixed key hint; this module reads and writes
the bytes ``model-signing`` itself reads and writes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airlock.core.signing import (
    BUNDLE_MEDIA_TYPE,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    file_problems,
    pae,
    root_digest,
    statement_of,
)
from airlock.errors import InvalidInput

SIGNATURE_FILE = "model.sig"
# What model-signing ignores by default besides the signature file itself.
GIT_PATHS = (".git", ".github", ".gitattributes", ".gitignore")
DEFAULT_IGNORE_PATHS = (SIGNATURE_FILE, *GIT_PATHS)

__all__ = [
    "DEFAULT_IGNORE_PATHS",
    "PAYLOAD_TYPE",
    "SIGNATURE_FILE",
    "OpenSSFBundle",
    "is_ignored",
    "is_openssf_bundle",
    "make_bundle",
    "pae",
    "parse_bundle",
    "signed_files",
    "statement_for_files",
    "statement_payload",
    "statement_problems",
]


def is_ignored(path: str, ignore_paths: Iterable[str]) -> bool:
    """As model-signing decides: ``path`` is an ignored path or lies under one."""
    for p in ignore_paths:
        p = p.strip("/")
        if p and (path == p or path.startswith(p + "/")):
            return True
    return False


def statement_for_files(
    model_name: str,
    files: Mapping[str, str],
    *,
    ignore_paths: Iterable[str] = DEFAULT_IGNORE_PATHS,
) -> dict[str, Any]:
    """The in-toto statement model-signing writes for a folder of ``files`` (path -> sha256 hex)."""
    ignored = list(dict.fromkeys(ignore_paths))
    resources = [
        {"name": path, "algorithm": "sha256", "digest": files[path]}
        for path in sorted(files)
        if not is_ignored(path, ignored)
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": root_digest(resources)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": ignored,
            },
            "resources": resources,
        },
    }


def statement_payload(statement: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(statement), indent=2, sort_keys=True).encode("utf-8")


def make_bundle(
    payload: bytes,
    signature: bytes,
    *,
    key_hint: str | None = None,
    certificates: Iterable[bytes] = (),
) -> dict[str, Any]:
    """The bundle JSON model-signing reads: a key hint, or a certificate chain (DER each)."""
    chain = [base64.b64encode(c).decode("ascii") for c in certificates]
    material: dict[str, Any]
    if chain:
        material = {"x509CertificateChain": {"certificates": [{"rawBytes": c} for c in chain]}}
    elif key_hint is not None:
        material = {"publicKey": {"hint": key_hint}}
    else:
        raise ValueError("a bundle needs a key hint or a certificate chain")
    material["tlogEntries"] = []
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }


@dataclass(frozen=True, slots=True)
class OpenSSFBundle:
    payload_type: str
    payload: bytes
    signature: bytes
    key_hint: str | None  # hex sha256 of the signer's public key PEM (key-based)
    certificates: tuple[bytes, ...]  # DER: signing certificate first (certificate-based)

    @property
    def signed_bytes(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def statement(self) -> dict[str, Any]:
        return statement_of(self.payload)


def _material(text: str | bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    material = data.get("verificationMaterial")
    return material if isinstance(material, dict) else None


def is_openssf_bundle(text: str | bytes) -> bool:
    """Written by model-signing (or ``airlock sign --format openssf``), not airlock's ed25519 format.

    Airlock's own bundles name their key ``sha256:<hex>``; model-signing's carry a
    bare hex key hint or a certificate chain.
    """
    material = _material(text)
    if material is None:
        return False
    if "x509CertificateChain" in material:
        return True
    hint = (material.get("publicKey") or {}).get("hint")
    return isinstance(hint, str) and not hint.startswith("sha256:")


def parse_bundle(text: str | bytes) -> OpenSSFBundle:
    """Read a model-signing bundle; ``InvalidInput`` names what is malformed."""
    try:
        data = json.loads(text)
        env = data["dsseEnvelope"]
        sig = env["signatures"][0]
        material = data["verificationMaterial"]
        chain = material.get("x509CertificateChain")
        certificates = (
            tuple(base64.b64decode(c["rawBytes"], validate=True) for c in chain["certificates"])
            if chain
            else ()
        )
        hint = None if chain else str(material["publicKey"]["hint"])
        if chain and not certificates:
            raise IndexError("the certificate chain is empty")
        return OpenSSFBundle(
            payload_type=str(env["payloadType"]),
            payload=base64.b64decode(env["payload"], validate=True),
            signature=base64.b64decode(sig["sig"], validate=True),
            key_hint=hint,
            certificates=certificates,
        )
    except (
        json.JSONDecodeError,
        UnicodeDecodeError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        binascii.Error,
    ) as exc:
        raise InvalidInput(
            f"not an OpenSSF model-signing bundle ({type(exc).__name__}: {exc})",
            hint="a bundle is the model.sig written by `model_signing sign` or "
            "`airlock sign --format openssf`",
        ) from exc


def ignore_paths_of(statement: Mapping[str, Any]) -> list[str]:
    predicate = statement.get("predicate") or {}
    serialization = predicate.get("serialization") if isinstance(predicate, dict) else None
    paths = (serialization or {}).get("ignore_paths") if isinstance(serialization, dict) else None
    return [str(p) for p in paths] if isinstance(paths, list) else []


def signed_files(files: Mapping[str, str], statement: Mapping[str, Any]) -> dict[str, str]:
    """The files a verifier compares with ``statement``: git's files and ignored paths left out."""
    ignored = [*ignore_paths_of(statement), *GIT_PATHS]
    return {p: d for p, d in files.items() if not is_ignored(p, ignored)}


def statement_problems(statement: Mapping[str, Any], files: Mapping[str, str]) -> list[str]:
    """What in ``statement`` does not match ``files`` (path -> sha256 hex, ignored paths included)."""
    problems: list[str] = []
    if statement.get("_type") != STATEMENT_TYPE:
        problems.append(f"not an in-toto v1 statement ({statement.get('_type')!r})")
    if statement.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"unexpected predicate type {statement.get('predicateType')!r}")
    predicate = statement.get("predicate") or {}
    serialization = predicate.get("serialization") if isinstance(predicate, dict) else None
    if not isinstance(serialization, dict) or serialization.get("method") != "files":
        method = serialization.get("method") if isinstance(serialization, dict) else None
        problems.append(f"serialization {method!r} is not supported (only 'files')")
    elif serialization.get("hash_type") != "sha256":
        problems.append(f"hash type {serialization.get('hash_type')!r} is not supported")
    resources = predicate.get("resources") if isinstance(predicate, dict) else None
    if not isinstance(resources, list):
        return [*problems, "the statement lists no resources"]
    subjects = statement.get("subject") or [{}]
    try:
        claimed_root = (subjects[0].get("digest") or {}).get("sha256")
        signed = {str(r["name"]): str(r["digest"]) for r in resources}
        if any(r.get("algorithm", "sha256") != "sha256" for r in resources):
            problems.append("a resource is not hashed with sha256")
        if claimed_root != root_digest(resources):
            problems.append("the subject digest does not match the listed resources")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return [*problems, "malformed resource list"]
    problems.extend(file_problems(signed, signed_files(files, statement)))
    return problems

"""Signed checkpoints of the audit chain: a (seq, hash) pair that can be kept outside.

A checkpoint is a small JSON document::

    {"type": "airlock.audit.checkpoint/v1", "seq": 42, "hash": "<64 hex>",
     "at": "<ISO time>", "key_id": "sha256:…", "public_key": "<PEM>",
     "signature": "<base64 ed25519 over the canonical JSON of type, seq, hash, at, key_id>"}

Kept where whoever can write the catalog cannot (a ticket, a bucket with object
lock, a colleague's inbox), it turns "the chain verifies" into "the chain still
contains what it contained then": a chain rewritten with every later hash
recomputed, or a tail cut off, no longer verifies against it. The signature says
which key made it (the workspace's audit key, or a trusted key).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from airlock.audit.chain import Checkpoint
from airlock.core import signing
from airlock.core.digest import canonical_json
from airlock.errors import IntegrityError, InvalidInput

CHECKPOINT_TYPE = "airlock.audit.checkpoint/v1"
MAX_CHECKPOINT_FILE = 4 << 20


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    at: str
    key_id: str
    public_key: str  # PEM
    signature: str  # base64

    def signed_bytes(self) -> bytes:
        return canonical_json(
            {
                "type": CHECKPOINT_TYPE,
                "seq": self.checkpoint.seq,
                "hash": self.checkpoint.hash,
                "at": self.at,
                "key_id": self.key_id,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": CHECKPOINT_TYPE,
            "seq": self.checkpoint.seq,
            "hash": self.checkpoint.hash,
            "at": self.at,
            "key_id": self.key_id,
            "public_key": self.public_key,
            "signature": self.signature,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def check_signature(self) -> None:
        """Raise ``IntegrityError`` unless the signature verifies with the embedded key,
        and the key is the one ``key_id`` names."""
        key = _public_key(self.public_key)
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if signing.key_id(raw) != self.key_id:
            raise IntegrityError(
                f"checkpoint {self.checkpoint.seq}: its public key is not key {self.key_id}",
                hint="the checkpoint file was altered; use an original copy",
            )
        try:
            key.verify(base64.b64decode(self.signature, validate=True), self.signed_bytes())
        except (InvalidSignature, binascii.Error, ValueError):
            raise IntegrityError(
                f"checkpoint {self.checkpoint.seq}: the signature does not verify",
                hint="the checkpoint file was altered; use an original copy",
            ) from None


def sign_checkpoint(checkpoint: Checkpoint, at: str, key: Ed25519PrivateKey) -> SignedCheckpoint:
    public = key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    unsigned = SignedCheckpoint(checkpoint, at, signing.key_id(raw), pem, "")
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode("ascii")
    return SignedCheckpoint(checkpoint, at, unsigned.key_id, pem, signature)


def parse_checkpoints(text: str, *, source: str = "checkpoint") -> list[SignedCheckpoint]:
    """One checkpoint (JSON) or several (JSON Lines, as ``serve --checkpoint-file`` writes)."""
    if len(text) > MAX_CHECKPOINT_FILE:
        raise InvalidInput(f"{source} is larger than {MAX_CHECKPOINT_FILE >> 20} MiB")
    stripped = text.strip()
    if not stripped:
        raise InvalidInput(f"{source} is empty", hint="write one with `airlock audit checkpoint`")
    try:
        docs = [json.loads(stripped)]
    except json.JSONDecodeError:
        docs = []
        for n, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{source}, line {n}: not JSON ({exc.msg})") from None
    return [_one(doc, f"{source} #{i}") for i, doc in enumerate(docs, 1)]


def _one(doc: Any, where: str) -> SignedCheckpoint:
    if not isinstance(doc, dict) or doc.get("type") != CHECKPOINT_TYPE:
        raise InvalidInput(
            f"{where} is not an Airlock audit checkpoint (type {CHECKPOINT_TYPE})",
            hint="write one with `airlock audit checkpoint`",
        )
    fields = ("seq", "hash", "at", "key_id", "public_key", "signature")
    missing = [f for f in fields if f not in doc]
    if missing:
        raise InvalidInput(f"{where} lacks {', '.join(missing)}")
    seq, digest = doc["seq"], doc["hash"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise InvalidInput(f"{where}: seq must be a positive integer")
    if not all(isinstance(doc[f], str) for f in fields[1:]):
        raise InvalidInput(f"{where}: hash, at, key_id, public_key and signature must be text")
    try:
        checkpoint = Checkpoint.parse(f"{seq}:{digest}")
    except ValueError as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    return SignedCheckpoint(
        checkpoint, doc["at"], doc["key_id"], doc["public_key"], doc["signature"]
    )


def _public_key(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise IntegrityError(f"the checkpoint's public key is unreadable ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise IntegrityError("the checkpoint's public key is not an ed25519 key")
    return key

"""Response ids that prove where they came from: HMAC-signed by the gateway fleet.

A gateway answers with an id such as ``chatcmpl-<payload>.<signature>``. The
payload (URL-safe base64 of a small JSON array) names the service, the release
that answered, the gateway key that asked (``""`` in open mode), the issue time
and a random nonce; the signature is an HMAC-SHA256 over the prefix and the
payload with a secret every gateway of the fleet shares (kept in the catalog).

So feedback needs no lookup table to know which release a response came from,
works on any replica, and cannot name a response nobody was given: a forged or
edited id fails :func:`read_response_id` with a reason (``malformed`` or
``bad_signature``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Literal

_PREFIXES = {"chat": "chatcmpl-", "completion": "cmpl-"}
_VERSION = 1
_SIG_BYTES = 18
MAX_ID_LENGTH = 1024

InvalidReason = Literal["malformed", "bad_signature"]


class InvalidResponseId(ValueError):
    def __init__(self, reason: InvalidReason) -> None:
        super().__init__(reason)
        self.reason: InvalidReason = reason


@dataclass(frozen=True, slots=True)
class ResponseTicket:
    """What a signed response id says about the response."""

    kind: str  # chat | completion
    service: str
    release: str
    key_id: str  # "" when no key was needed
    issued_at: float  # Unix seconds
    nonce: str
    cluster: int = 0  # the user's analysis cluster (feedback counts there)


def new_nonce() -> str:
    return secrets.token_hex(6)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, prefix: str, payload: str) -> str:
    mac = hmac.new(secret, f"airlock-response|{prefix}{payload}".encode(), hashlib.sha256)
    return _b64(mac.digest()[:_SIG_BYTES])


def issue_response_id(secret: bytes, ticket: ResponseTicket) -> str:
    prefix = _PREFIXES[ticket.kind]
    body = [
        _VERSION,
        round(ticket.issued_at * 1000),
        ticket.key_id,
        ticket.service,
        ticket.release,
        ticket.nonce,
        ticket.cluster,
    ]
    payload = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    return f"{prefix}{payload}.{_sign(secret, prefix, payload)}"


def read_response_id(secret: bytes, rid: str) -> ResponseTicket:
    """The ticket inside ``rid``; ``InvalidResponseId`` when it is not one this fleet signed."""
    if not isinstance(rid, str) or len(rid) > MAX_ID_LENGTH:
        raise InvalidResponseId("malformed")
    kind = next((k for k, p in _PREFIXES.items() if rid.startswith(p)), None)
    if kind is None:
        raise InvalidResponseId("malformed")
    prefix = _PREFIXES[kind]
    payload, dot, signature = rid[len(prefix) :].partition(".")
    if not dot or not payload or not signature:
        raise InvalidResponseId("malformed")
    if not hmac.compare_digest(_sign(secret, prefix, payload), signature):
        raise InvalidResponseId("bad_signature")
    try:
        body = json.loads(_unb64(payload))
        version, issued_ms, key_id, service, release, nonce, *rest = body
        cluster = int(rest[0]) if rest else 0
    except (ValueError, TypeError, binascii.Error):  # signed by us, so only a format change
        raise InvalidResponseId("malformed") from None
    if version != _VERSION or not isinstance(issued_ms, int):
        raise InvalidResponseId("malformed")
    return ResponseTicket(
        kind, str(service), str(release), str(key_id), issued_ms / 1000, nonce, cluster
    )


__all__ = [
    "MAX_ID_LENGTH",
    "InvalidReason",
    "InvalidResponseId",
    "ResponseTicket",
    "issue_response_id",
    "new_nonce",
    "read_response_id",
]

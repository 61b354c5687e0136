"""Masking secrets in text that goes to a log: credentials in URLs, Authorization headers,
API keys and bearer tokens, and any secret value the caller knows of.

``mask_secrets(text, known=(api_key,))`` replaces each with ``***`` (keeping the
name, so a log still says *which* credential was there); ``safe_url(url)`` drops
the ``user:password@`` part of a URL. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@\"'<>]+@")
_AUTH_HEADER = re.compile(
    r"(?P<name>\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?P<scheme>bearer|basic|token|digest)\s+)?[^\s\"',;}\]]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/=:-]{6,}", re.IGNORECASE)
_NAMED_SECRET = re.compile(
    r"(?P<name>\b(?:x-)?(?:api[_-]?key|access[_-]?token|refresh[_-]?token|auth[_-]?token|"
    r"client[_-]?secret|secret|password|passwd|token|cookie|set-cookie)\b[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"',;&}\]]+",
    re.IGNORECASE,
)
_KEY_SHAPES = re.compile(
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}|\balk_[0-9a-f]{6,}_[A-Za-z0-9_-]+|\bhf_[A-Za-z0-9]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{20,}"
)


def mask_secrets(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` with every credential it visibly carries replaced by ``***``."""
    for secret in known:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _AUTH_HEADER.sub(
        lambda m: f"{m['name']}{m['scheme'] + ' ' if m['scheme'] else ''}{MASK}", text
    )
    text = _BEARER.sub(lambda m: f"{m['scheme']} {MASK}", text)
    text = _NAMED_SECRET.sub(lambda m: f"{m['name']}{MASK}", text)
    return _KEY_SHAPES.sub(MASK, text)


def safe_url(url: str) -> str:
    """``url`` without its ``user:password@`` part (as shown in messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return mask_secrets(url)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


__all__ = ["MASK", "mask_secrets", "safe_url"]

"""Guardrails on the request path: whole texts, and streams that must stay safe as they go.

A stream cannot be un-sent, so :class:`StreamGuard` holds back the last
``holdback`` characters: each new piece re-checks the text so far and releases
only what lies more than ``holdback`` characters before its end. A match no
longer than ``holdback`` that is still growing therefore lies wholly in the
held-back part, and is redacted (or blocks the answer) before any of it is
sent. When the policy has no rule watching the output, pieces pass untouched.
"""

from __future__ import annotations

from airlock.core.guardrails import Flag, SafetyPolicy, apply

DEFAULT_HOLDBACK = 64


def watches(policy: SafetyPolicy | None, direction: str) -> bool:
    """Whether any rule of ``policy`` looks at ``direction`` (``input`` / ``output``)."""
    if policy is None:
        return False
    if policy.blocked_terms:
        return True
    rules = (*policy.terms, *policy.regexes, *policy.pii)
    return any(direction in r.directions for r in rules)


class StreamGuard:
    def __init__(self, policy: SafetyPolicy, *, holdback: int = DEFAULT_HOLDBACK) -> None:
        self.policy = policy
        self.holdback = holdback
        self.raw = ""
        self.sent = ""
        self.blocked = False
        self.flags: tuple[Flag, ...] = ()

    def feed(self, piece: str) -> str:
        """Add model text; return the text that is now safe to send ("" if none)."""
        if self.blocked:
            return ""
        self.raw += piece
        return self._release(final=False)

    def finish(self) -> str:
        """The rest of the text, checked, at the end of the stream."""
        if self.blocked:
            return ""
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        result = apply(self.policy, self.raw, direction="output")
        self.flags = result.flags
        if result.blocked:
            self.blocked = True
            return ""
        text = result.text
        upto = len(text) if final else max(len(self.sent), len(text) - self.holdback)
        if not text.startswith(self.sent):  # a match longer than the holdback: keep going
            upto = max(upto, len(self.sent))
            out = text[len(self.sent) : upto] if len(text) > len(self.sent) else ""
        else:
            out = text[len(self.sent) : upto]
        self.sent += out
        return out

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


__all__ = ["DEFAULT_HOLDBACK", "StreamGuard", "watches"]

"""Parse a large JSON request body with its arrays counted as they are read: refuse early.

``json.loads`` of a 34 MB chat request of 1,000,000 tiny messages builds a million
dicts (about a second of CPU) before anyone can count them. :func:`loads_bounded`
reads the top-level object one member at a time with the standard library's own C
scanner, and the members named in ``max_items`` (``messages``) one element at a
time: the element after the limit is refused before it is parsed, so the cost of a
refusal is that of the limit, not of the body. What it accepts it returns exactly as
``json.loads`` would (the same scanner parses every value; a repeated key keeps its
last value), so no valid request is refused; a ``"role"`` inside a string changes
nothing, since strings are read by the scanner, never searched.

Nesting is bounded as in :func:`~airlock.core.request_limits.loads_json` (the body
object is level 1): a value that could nest too deep (more brackets in its text than
levels left) is measured after it is parsed, and the scanner's own recursion guard
turns a value nested thousands deep into the same refusal.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable, Mapping
from typing import Any

from airlock.core.request_limits import clip, json_depth, too_deep
from airlock.errors import InvalidInput

_WS = re.compile(r"[ \t\n\r]*")
# The standard library's C scanner (the one ``json.loads`` uses): one value, one string.
# (Untyped in typeshed, hence the ``Any`` modules.)
_scanner: Any = json.scanner
_decoder: Any = json.decoder
_scan_value: Callable[[str, int], tuple[Any, int]] = _scanner.make_scanner(json.JSONDecoder())
_scan_string: Callable[[str, int, bool], tuple[str, int]] = _decoder.scanstring


def loads_bounded(
    body: bytes,
    *,
    max_depth: int,
    max_items: Mapping[str, tuple[int, str]],
    what: str = "the request body",
) -> dict[str, Any]:
    """The JSON object ``body``; ``max_items`` maps a top-level member to (its most
    elements, the setting that says so). Every refusal is an ``InvalidInput`` naming why."""
    try:
        text = body.decode(json.detect_encoding(body))
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {clip(str(exc), 120)}") from exc
    try:
        return _Reader(text, max_depth, max_items, what).document()
    except RecursionError:
        raise too_deep(what, max_depth) from None
    except ValueError as exc:  # JSONDecodeError; an integer of too many digits
        raise InvalidInput(f"{what} is not valid JSON: {clip(str(exc), 120)}") from exc


class _Reader:
    def __init__(
        self, text: str, max_depth: int, max_items: Mapping[str, tuple[int, str]], what: str
    ) -> None:
        self.text = text
        self.max_depth = max_depth
        self.max_items = max_items
        self.what = what

    def skip(self, i: int) -> int:
        found = _WS.match(self.text, i)
        assert found is not None  # the pattern matches the empty string
        return found.end()

    def fail(self, expected: str, i: int) -> json.JSONDecodeError:
        return json.JSONDecodeError(expected, self.text, i)

    def document(self) -> dict[str, Any]:
        text = self.text
        i = self.skip(0)
        if not text.startswith("{", i):
            raise InvalidInput(f"{self.what} must be a JSON object")
        obj: dict[str, Any] = {}
        i = self.skip(i + 1)
        if text.startswith("}", i):
            i += 1
        else:
            while True:
                if not text.startswith('"', i):
                    raise self.fail("Expecting property name enclosed in double quotes", i)
                key, i = _scan_string(text, i + 1, True)
                i = self.skip(i)
                if not text.startswith(":", i):
                    raise self.fail("Expecting ':' delimiter", i)
                i = self.skip(i + 1)
                bound = self.max_items.get(key)
                if bound is not None and text.startswith("[", i):
                    obj[key], i = self.array(i, key, *bound)
                else:
                    obj[key], i = self.value(i, 1)
                i = self.skip(i)
                if text.startswith(",", i):
                    i = self.skip(i + 1)
                elif text.startswith("}", i):
                    i += 1
                    break
                else:
                    raise self.fail("Expecting ',' delimiter", i)
        i = self.skip(i)
        if i != len(text):
            raise self.fail("Extra data", i)
        return obj

    def value(self, i: int, level: int) -> tuple[Any, int]:
        """The value at ``i`` inside ``level`` containers, and where it ends."""
        try:
            value, end = _scan_value(self.text, i)
        except StopIteration as stop:
            raise self.fail("Expecting value", stop.value) from None
        room = self.max_depth - level
        brackets = self.text.count("[", i, end) + self.text.count("{", i, end)
        if brackets > room and json_depth(value) > room:  # few brackets: cannot nest too deep
            raise too_deep(self.what, self.max_depth)
        return value, end

    def array(self, i: int, key: str, limit: int, setting: str) -> tuple[list[Any], int]:
        """The array at ``i`` (member ``key``), refused at its element number ``limit + 1``."""
        text = self.text
        items: list[Any] = []
        i = self.skip(i + 1)
        if text.startswith("]", i):
            return items, i + 1
        while True:
            if len(items) == limit:
                raise InvalidInput(
                    f"{key!r} has more than {limit} entries; the limit is {limit} ({setting})",
                    hint="send fewer messages, e.g. summarise or drop the oldest turns",
                )
            item, i = self.value(i, 2)
            items.append(item)
            i = self.skip(i)
            if text.startswith(",", i):
                i = self.skip(i + 1)
            elif text.startswith("]", i):
                return items, i + 1
            else:
                raise self.fail("Expecting ',' delimiter", i)


__all__ = ["loads_bounded"]

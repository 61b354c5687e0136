"""Plain parameter values (``str``, ``int``, ``float``, ``bool``) without importing pydantic.

Typer (0.2x) coerces every parameter value, defaults included, through a pydantic
``TypeAdapter`` that it builds on first use: importing pydantic and building one
adapter costs a quick command like ``airlock ls`` tens of milliseconds. For the
values whose result is certain (a ``str`` that is valid Unicode; a plain decimal
``int`` or fixed-point ``float`` within the option's range; a ``bool``),
:class:`PlainValue` returns what the adapter would; any other value (out of range,
``1_000``, ``1e3``, an invalid string...) goes to Typer's own adapter, so every
message and result stays Typer's.

:func:`plain_values` puts :class:`PlainValue` on a built command's plain parameters;
with a Typer that has no such adapters it does nothing.
tests/cli/test_cli_coercion.py checks it against Typer's adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from typer import _click as click

try:  # Typer's internals: present in the Typer versions that coerce through pydantic
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - an older or newer Typer: leave its coercion alone
    RuntimeParam = None  # type: ignore[assignment,misc]

_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,17})")
_FIXED_POINT = re.compile(r"(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?")
_PLAIN = (str, int, float, bool)

if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainValue(RuntimeParam):
        """Coerce a plain value directly; hand anything uncertain to Typer's adapter."""

        def _coerce_value(self, value: Any, param: _TyperParameter, ctx: click.Context) -> Any:
            done, result = _plain(self.annotation, value, param.type_descriptor.parameter_info)
            if done:
                return result
            full = build_runtime_param(param.type_descriptor)
            param._runtime_param = full  # from now on Typer's own, as if we were not here
            return full._coerce_value(value, param=param, ctx=ctx)


def _plain(annotation: Any, value: Any, info: Any) -> tuple[bool, Any]:
    """``(True, result)`` when ``value`` has one certain result, else ``(False, None)``."""
    if annotation is str:
        if type(value) is str:
            try:
                value.encode("utf-8")  # pydantic refuses lone surrogates: its message
            except UnicodeEncodeError:
                return False, None
            return True, value
        return False, None
    if annotation is bool:
        return (True, value) if type(value) is bool else (False, None)
    number: int | float
    if annotation is int:
        if type(value) is int:
            number = value
        elif type(value) is str and _DECIMAL.fullmatch(value):
            number = int(value)
        else:
            return False, None
    elif annotation is float and type(value) is float and value == value:  # not NaN
        number = value
    elif annotation is float and type(value) is str and _FIXED_POINT.fullmatch(value):
        number = float(value)  # correctly rounded, as pydantic's parser
    else:
        return False, None
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        return False, None  # Typer's message (or clamp) for a value out of range
    return True, number


def plain_values(command: click.Command, ctx: click.Context | None = None) -> None:
    """Coerce ``command``'s plain parameters (and its subcommands') without pydantic.

    With ``ctx`` (the parent's: the help option's names are inherited) each command's
    ``--help`` option, which Click makes once on first use, is made now and made plain.
    """
    if RuntimeParam is None:  # pragma: no cover
        return
    params = list(command.params)
    if ctx is not None and "help_option_names" not in command.context_settings:
        help_option = command.get_help_option(ctx)
        if help_option is not None:
            params.append(help_option)
    for param in params:
        make_plain(param)
    for sub in getattr(command, "commands", {}).values():
        plain_values(sub, ctx)


def make_plain(param: click.Parameter) -> None:
    """Coerce ``param``'s values without pydantic when its type is a plain one."""
    if RuntimeParam is None or not isinstance(param, _TyperParameter):  # pragma: no cover
        return
    descriptor = param.type_descriptor
    info = descriptor.parameter_info
    if (
        getattr(param, "_runtime_param", False) is None  # not built yet
        and descriptor.annotation in _PLAIN
        and descriptor.file_annotation is None
        and info.parser is None
        and not info.clamp
        and not param.multiple
        and param.nargs == 1
    ):
        param._runtime_param = PlainValue(parameter_info=info, annotation=descriptor.annotation)

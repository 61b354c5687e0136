"""API response models derived from the services' frozen values: no hand-copied field lists.

A response model names the value it mirrors and only how its JSON differs::

    class AliasOut(Out):
        __value__ = From(Alias, exclude={"release_id"}, rename={"name": "alias"})

The fields are the value's dataclass fields, in their order and with their types (all
required: a response always has every field);
a nested value becomes the response model derived from it (``tuple[X, ...]`` a list), so a
field added to a value shows in the JSON and in the OpenAPI document without a second list
to keep in step. Annotations in the class body add computed fields (a property of the value,
or what the route adds) or override a field's type or description. Models validate from the
value itself (``AliasOut.model_validate(alias)``: properties are read as attributes, a renamed
field from its old name) or from the value's ``to_dict()``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Self, get_args, get_origin, get_type_hints

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic._internal._model_construction import ModelMetaclass

_DERIVED: dict[type, type[BaseModel]] = {}  # value class -> the first model derived from it


@dataclass(frozen=True)
class From:
    """Which frozen value a response model mirrors, and how its JSON differs."""

    value: type
    exclude: Collection[str] = frozenset()
    rename: Mapping[str, str] = field(default_factory=dict)  # value field -> JSON name
    unbounded: Collection[str] = frozenset()  # floats that are null in JSON when unbounded
    first: Collection[str] = ()  # fields (the value's or the body's) placed first, in this order


def _translate(tp: Any) -> Any:
    """A value's field type as a response model field type."""
    if isinstance(tp, type) and tp in _DERIVED:
        return _DERIVED[tp]
    origin, args = get_origin(tp), get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return list[_translate(args[0])]  # type: ignore[misc]
    if origin in (list, tuple) and args:
        return list[_translate(args[0])]  # type: ignore[misc]
    if origin in (dict, Mapping) and len(args) == 2:
        return dict[_translate(args[0]), _translate(args[1])]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_translate(a) for a in args)]  # noqa: UP007
    return tp


def _null_if_unbounded(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _fields(spec: From, own: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(annotations, class attributes) of the model: the value's fields, then the body's."""
    if not dataclasses.is_dataclass(spec.value):
        raise TypeError(f"{spec.value.__name__} is not a dataclass")
    hints = get_type_hints(spec.value)
    annotations: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    for f in dataclasses.fields(spec.value):
        if f.name in spec.exclude or not f.init or f.name.startswith("_"):
            continue
        name = spec.rename.get(f.name, f.name)
        tp = _translate(hints[f.name])
        if f.name in spec.unbounded:
            tp = Annotated[tp | None, BeforeValidator(_null_if_unbounded)]
        annotations[name] = tp
        if name != f.name:
            attrs[name] = Field(validation_alias=AliasChoices(name, f.name))
    for name, tp in own.items():
        annotations[name] = tp  # a body annotation overrides (keeps the field's place)
    ordered = {name: annotations[name] for name in spec.first}
    return {**ordered, **annotations}, attrs


class _Derived(ModelMetaclass):
    def __new__(
        mcs,
        cls_name: str,
        bases: tuple[type[Any], ...],
        namespace: dict[str, Any],
        **kwargs: Any,
    ) -> type:
        spec = namespace.pop("__value__", None)
        if isinstance(spec, From):
            own = dict(namespace.get("__annotations__", {}))
            annotations, attrs = _fields(spec, own)
            namespace["__annotations__"] = annotations
            for name, default in attrs.items():
                namespace.setdefault(name, default)
        cls = super().__new__(mcs, cls_name, bases, namespace, **kwargs)
        if isinstance(spec, From):
            cls.__derived_from__ = spec.value  # type: ignore[attr-defined]
            cls.__derive__ = spec  # type: ignore[attr-defined]
            cls.__sources__ = {new: old for old, new in spec.rename.items()}  # type: ignore[attr-defined]
            _DERIVED.setdefault(spec.value, cls)
        return cls


class Out(BaseModel, metaclass=_Derived):
    """A frozen response body; set ``__value__ = From(...)`` to derive its fields."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    @classmethod
    def of(cls, value: Any, **extra: Any) -> Self:
        """The body of ``value``: each field read from its attribute, unless given in ``extra``."""
        sources: Mapping[str, str] = getattr(cls, "__sources__", {})
        data: dict[str, Any] = {}
        for name in cls.model_fields:
            source = sources.get(name, name)
            if name not in extra and hasattr(value, source):
                data[name] = getattr(value, source)
        return cls.model_validate({**data, **extra})


def derive_spec(model: type[BaseModel]) -> From | None:
    """How a response model was derived (None for a hand-written body)."""
    found: From | None = getattr(model, "__derive__", None)
    return found


def derived_from(model: type[BaseModel]) -> type | None:
    """The value a response model was derived from (None for a hand-written body)."""
    found: type | None = getattr(model, "__derived_from__", None)
    return found


__all__ = ["From", "Out", "derive_spec", "derived_from"]

"""Reading YAML/JSON documents into validated models, with errors that name the field.

Policies, safety policies, prompt templates, decoding defaults, suites, specs and
manifests all come from a user's file: each parse goes through here, so every
error reads the same way (``invalid policy: stages.production.approvals: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from airlock.core.limits import check_json_value
from airlock.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def load_mapping(
    data: str | bytes | Mapping[str, Any], what: str, *, hint: str = "", empty_ok: bool = False
) -> dict[str, Any]:
    """YAML (a superset of JSON) text, bytes or a mapping → a plain dict."""
    if isinstance(data, Mapping):
        return dict(data)
    import yaml  # on first parse: reading a stored manifest (JSON) does not need it

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{what} is not valid YAML/JSON: {exc}", hint=hint) from exc
    except RecursionError as exc:
        raise InvalidInput(f"{what} is nested too deeply", hint=hint) from exc
    check_json_value(value, what, strict=False)  # an alias bomb stops here, unexpanded
    if value is None and empty_ok:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a mapping of fields", hint=hint)
    return value


def validation_message(exc: ValidationError, default_where: str) -> str:
    """``where: what is wrong`` for the first error pydantic found."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or default_where
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {msg}"


def parse_model(
    model: type[M], data: str | bytes | Mapping[str, Any], what: str, *, hint: str = ""
) -> M:
    """Load and validate; any problem is one ``InvalidInput`` naming the field."""
    value = load_mapping(data, what, hint=hint)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidInput(f"invalid {what}: {validation_message(exc, what)}", hint=hint) from exc

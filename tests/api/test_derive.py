"""API response models are derived from the services' values (api/derive.py)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from airlock.api import bodies, gateway_key_routes, rollout_routes, schemas
from airlock.api.derive import From, Out, derive_spec, derived_from
from airlock.core.records import Alias
from airlock.core.verdict import MetricVerdict

# Bodies with no value behind them: an API page, a graph, a route's own answer.
API_ONLY = {
    "ChainOut",
    "DrillStartedOut",
    "EventPage",
    "LineageOut",
    "SignaturesOut",
    "TelemetryOut",
}


def _responses() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for module in (schemas, bodies, rollout_routes, gateway_key_routes):
        for name, obj in vars(module).items():
            named = name.endswith(("Out", "Node", "Edge", "Page", "Summary"))
            if named and isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not Out:
                found[name] = obj
    return found


def test_every_response_body_with_a_value_behind_it_is_derived_from_it() -> None:
    responses = _responses()
    assert len(responses) > 30
    hand_written = {n for n, m in responses.items() if derived_from(m) is None}
    assert hand_written == API_ONLY


def test_a_derived_body_has_every_field_of_its_value_it_does_not_exclude() -> None:
    for model in _responses().values():
        spec = derive_spec(model)
        if spec is None:
            continue
        wanted = [
            spec.rename.get(f.name, f.name)
            for f in dataclasses.fields(spec.value)
            if f.init and not f.name.startswith("_") and f.name not in spec.exclude
        ]
        assert set(wanted) <= set(model.model_fields), model.__name__


def test_a_field_added_to_a_value_shows_in_the_json() -> None:
    @dataclass(frozen=True)
    class Lamp:
        name: str
        watts: float
        made: datetime
        colour: str | None = None

    class LampOut(Out):
        __value__ = From(Lamp, rename={"name": "label"}, unbounded={"watts"})
        bright: bool

    lamp = Lamp("desk", math.inf, datetime(2026, 1, 2, tzinfo=UTC))
    out = LampOut.of(lamp, bright=True)
    assert list(LampOut.model_fields) == ["label", "watts", "made", "colour", "bright"]
    assert out.model_dump(mode="json") == {
        "label": "desk",
        "watts": None,  # unbounded
        "made": "2026-01-02T00:00:00Z",
        "colour": None,
        "bright": True,
    }
    assert LampOut.model_json_schema()["required"] == ["label", "watts", "made", "colour", "bright"]


def test_nested_values_become_their_derived_bodies() -> None:
    alias = Alias("chat", "production", 3, "1.2.0", datetime(2026, 1, 2, tzinfo=UTC), "olga")
    out = schemas.AliasOut.of(alias)
    assert out.model_dump() == {
        "model": "chat",
        "alias": "production",
        "version": "1.2.0",
        "updated_at": alias.updated_at,
        "updated_by": "olga",
    }
    assert bodies.VerdictOut.model_fields["per_metric"].annotation == list[bodies.MetricOut]
    assert derived_from(bodies.MetricOut) is MetricVerdict

"""Traffic plans: validation, sticky hashing, monotone growth, storage."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.core.traffic import BUCKETS, TrafficPlan, WeightedRelease, bucket_of
from airlock.errors import InvalidInput

USERS = [f"user-{i}" for i in range(1000)]


def canary(weight: int, *, generation: int = 0) -> TrafficPlan:
    return TrafficPlan(
        "chat", "chat@1.0.0", (WeightedRelease("chat@1.1.0", weight),), generation=generation
    )


# -- validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidates", "shadows", "message"),
    [
        ((("chat@2", 6000), ("chat@3", 4001)), (), "add up to 10001 bp"),
        ((("chat@2", 100), ("chat@2", 200)), (), "listed twice"),
        ((("chat@1", 100),), (), "also a candidate"),
        ((("chat@2", 100),), ("chat@2",), "both a candidate and a shadow"),
        ((("chat@2", 100),), ("chat@1",), "only while candidates take all traffic"),
        ((), ("chat@3", "chat@3"), "twice among shadows"),
    ],
)
def test_invalid_plans_are_refused_with_a_reason(
    candidates: tuple[tuple[str, int], ...], shadows: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        TrafficPlan("chat", "chat@1", tuple(WeightedRelease(r, w) for r, w in candidates), shadows)


@pytest.mark.parametrize("weight", [-1, 10_001, 1.5, True, "100"])
def test_weights_are_integer_basis_points(weight: object) -> None:
    with pytest.raises(InvalidInput, match="weight"):
        WeightedRelease("chat@2", weight)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["service", "stable"])
def test_names_must_not_be_empty(field: str) -> None:
    kwargs = {"service": "chat", "stable": "chat@1", field: ""}
    with pytest.raises(InvalidInput, match="non-empty"):
        TrafficPlan(**kwargs)  # type: ignore[arg-type]


def test_stable_may_shadow_only_a_full_candidate() -> None:
    plan = TrafficPlan("chat", "chat@1", (WeightedRelease("chat@2", BUCKETS),), ("chat@1",))
    assert plan.stable_weight() == 0
    assert plan.releases() == ("chat@1", "chat@2")


# -- routing ----------------------------------------------------------------------


def test_bucket_is_sha256_of_service_nul_user_mod_10000() -> None:
    expected = int.from_bytes(hashlib.sha256(b"chat\0alice").digest(), "big") % 10_000
    assert bucket_of("chat", "alice") == expected
    # The service is part of the key: one user lands in unrelated buckets per service.
    same = sum(bucket_of("chat", u) == bucket_of("code", u) for u in USERS)
    assert same < 5


def test_all_stable_sends_everyone_to_stable() -> None:
    plan = TrafficPlan.all_stable("chat", "chat@1.0.0")
    assert {plan.route(u) for u in USERS} == {"chat@1.0.0"}
    assert plan.stable_weight() == BUCKETS
    assert plan.releases() == ("chat@1.0.0",)


def test_full_weight_sends_everyone_to_the_candidate() -> None:
    assert {canary(BUCKETS).route(u) for u in USERS} == {"chat@1.1.0"}


def test_candidates_take_consecutive_ranges_from_zero() -> None:
    plan = TrafficPlan(
        "chat",
        "chat@1",
        (WeightedRelease("chat@2", 500), WeightedRelease("chat@3", 200)),
    )
    for user in USERS:
        bucket = bucket_of("chat", user)
        expected = "chat@2" if bucket < 500 else "chat@3" if bucket < 700 else "chat@1"
        assert plan.route(user) == expected


def test_routing_is_sticky_and_close_to_the_weights() -> None:
    plan = canary(2500)
    first = [plan.route(u) for u in USERS]
    assert first == [plan.route(u) for u in USERS]
    share = Counter(first)["chat@1.1.0"] / len(USERS)
    assert 0.20 < share < 0.30  # 1000 users: binomial sd ~1.4 %


def test_a_zero_weight_candidate_gets_nobody_but_is_loaded() -> None:
    plan = canary(0)
    assert {plan.route(u) for u in USERS} == {"chat@1.0.0"}
    assert plan.releases() == ("chat@1.0.0", "chat@1.1.0")


def test_growing_the_canary_never_moves_a_candidate_user_back() -> None:
    previous: set[str] = set()
    for weight in (0, 100, 500, 1000, 2500, 5000, 7500, 10_000):
        plan = canary(weight)
        on_candidate = {u for u in USERS if plan.route(u) == "chat@1.1.0"}
        assert previous <= on_candidate, f"users left the candidate at {weight} bp"
        previous = on_candidate
    assert previous == set(USERS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, BUCKETS), min_size=2, max_size=8))
def test_any_growth_keeps_candidate_users(weights: list[int]) -> None:
    weights.sort()
    previous: set[str] = set()
    for weight in weights:
        plan = canary(weight)
        current = {u for u in USERS[:300] if plan.route(u) != "chat@1.0.0"}
        assert previous <= current
        previous = current


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.integers(0, 5000),
)
def test_growing_the_first_of_two_candidates_never_moves_anyone_to_stable(
    first: int, second: int, extra: int
) -> None:
    def plan(a: int) -> TrafficPlan:
        return TrafficPlan(
            "chat", "chat@1", (WeightedRelease("chat@2", a), WeightedRelease("chat@3", second))
        )

    before, after = plan(first), plan(min(first + extra, BUCKETS - second))
    for user in USERS[:300]:
        if before.route(user) != "chat@1":
            assert after.route(user) != "chat@1"


# -- new plans and storage -----------------------------------------------------------


def test_with_weights_bumps_generation_and_keeps_order() -> None:
    plan = TrafficPlan(
        "chat", "chat@1", (WeightedRelease("chat@2", 100), WeightedRelease("chat@3", 100))
    )
    grown = plan.with_weights({"chat@3": 300, "chat@2": 500, "chat@4": 50}, shadows=["chat@5"])
    assert grown.generation == plan.generation + 1
    assert [c.release for c in grown.candidates] == ["chat@2", "chat@3", "chat@4"]
    assert grown.weight_of("chat@2") == 500
    assert grown.stable_weight() == BUCKETS - 850
    assert grown.shadows == ("chat@5",)
    assert grown.releases() == ("chat@1", "chat@2", "chat@3", "chat@4", "chat@5")
    dropped = grown.with_weights({"chat@4": 10})
    assert [c.release for c in dropped.candidates] == ["chat@4"]
    assert dropped.shadows == ("chat@5",)


def test_with_weights_validates_like_the_constructor() -> None:
    with pytest.raises(InvalidInput, match="add up to"):
        canary(100).with_weights({"chat@1.1.0": 9000, "chat@2": 2000})


def test_plans_are_hashable_values() -> None:
    assert canary(100) == canary(100)
    assert len({canary(100), canary(100), canary(200)}) == 2
    assert canary(100).same_routing(canary(100, generation=7))
    assert not canary(100).same_routing(canary(101))


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(st.integers(0, 2500), max_size=4),
    shadow=st.booleans(),
    generation=st.integers(0, 10**6),
)
def test_json_round_trip(weights: list[int], shadow: bool, generation: int) -> None:
    plan = TrafficPlan(
        "chat",
        "chat@1.0.0",
        tuple(WeightedRelease(f"chat@2.{i}.0", w) for i, w in enumerate(weights)),
        ("chat@9.0.0",) if shadow else (),
        generation,
    )
    text = json.dumps(plan.to_dict())
    again = TrafficPlan.from_dict(json.loads(text))
    assert again == plan
    assert [again.route(u) for u in USERS[:50]] == [plan.route(u) for u in USERS[:50]]


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"stable": "chat@1"},
        {"service": "chat", "stable": "chat@1", "candidates": [{"release": "chat@2"}]},
        {"service": "chat", "stable": "chat@1", "candidates": "chat@2"},
        {"service": "chat", "stable": "chat@1", "colour": "red"},
        {"service": "chat", "stable": "chat@1", "generation": -1},
    ],
)
def test_from_dict_refuses_malformed_data(data: object) -> None:
    with pytest.raises(InvalidInput):
        TrafficPlan.from_dict(data)  # type: ignore[arg-type]

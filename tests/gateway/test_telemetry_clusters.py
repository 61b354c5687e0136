"""Telemetry per analysis cluster: every counted field summed over clusters is its total,
``since(mark)`` and ``drain`` stay exact to the request, custom metrics and time to first
token are counted, and the catalog's detail JSON reads back into identical windows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.core.telemetry import (
    CLUSTER_FIELDS,
    TelemetryRecord,
    canonical_clusters,
    detail_json,
    parse_detail,
)
from airlock.core.window import CELLS, CLUSTERS, ReleaseWindow, custom_field, latency_cell
from airlock.errors import InvalidInput
from airlock.gateway.telemetry import Key, Telemetry

KEY: Key = ("chat", "chat@1.1.0", "live")
OTHER: Key = ("chat", "chat@1.0.0", "live")

Event = tuple[str, int, float, bool]

events = st.lists(
    st.tuples(
        st.sampled_from(["success", "stream", "failure", "fallback", "rejection", "feedback"]),
        st.integers(0, CLUSTERS - 1),
        st.floats(0.01, 200_000.0),
        st.booleans(),
    ),
    max_size=60,
)


def _apply(t: Telemetry, key: Key, event: Event) -> None:
    kind, cluster, ms, flag = event
    if kind == "success":
        t.success(key, ms, 3, 5, cluster=cluster, flagged=flag)
    elif kind == "stream":
        t.success(key, ms, 3, 5, cluster=cluster, flagged=flag, ttft_ms=ms / 7)
    elif kind == "failure":
        t.failure(key, "timeout", cluster=cluster)
    elif kind == "fallback":
        t.failure(key, "upstream_5xx", cluster=cluster, fallback=True)
    elif kind == "rejection":
        t.rejection(key, cluster=cluster, flagged=flag)
    else:
        t.feedback(key, 1.0 if flag else 0.25, cluster=cluster)
        t.custom(key, "helpful", 1.0 if flag else 0.0, cluster)


def _check_sums(w: ReleaseWindow) -> None:
    totals = {
        "requests": w.requests,
        "errors": w.errors,
        "guardrail_flags": w.guardrail_flags,
        "fallbacks": w.fallbacks,
        "feedback_count": w.feedback_count,
        "feedback_sum": w.feedback_sum,
    }
    if not w.clusters:
        assert all(v == 0 for v in totals.values())
        return
    assert set(CLUSTER_FIELDS) <= set(w.clusters)
    for name, total in totals.items():
        assert sum(w.clusters[name]) == pytest.approx(total)
    for name, (successes, trials) in w.custom.items():
        assert sum(w.clusters[custom_field(name, "successes")]) == pytest.approx(successes)
        assert sum(w.clusters[custom_field(name, "trials")]) == trials
    assert sum(w.latency_cells.values()) == w.latency_count == sum(w.latency_histogram)


@settings(max_examples=60, deadline=None)
@given(before=events, after=events)
def test_clusters_sum_to_totals_and_since_drain_are_exact(
    before: list[Event], after: list[Event]
) -> None:
    t, only_after, never_drained = Telemetry(), Telemetry(), Telemetry()
    for event in before:
        _apply(t, KEY, event)
        _apply(never_drained, KEY, event)
    drained = t.drain()
    mark = t.mark()
    for event in after:
        _apply(t, KEY, event)
        _apply(only_after, KEY, event)
        _apply(never_drained, KEY, event)
    drained += t.drain()
    _apply(t, OTHER, ("success", 0, 1.0, False))  # pending, another key

    total = never_drained.windows().get(KEY[:2], ReleaseWindow())
    _check_sums(total)
    # drain then totals: the same as never draining, per cluster and per cell
    assert t.windows().get(KEY[:2], ReleaseWindow()) == total
    # the drained records add up to the same window
    mine = [r for r in drained if r.key == KEY]
    if mine:
        summed = mine[0]
        for r in mine[1:]:
            summed = summed + r
        assert summed.window() == total
    # since(mark): exactly what came after, cluster by cluster and cell by cell
    after_window = t.since(mark).get(KEY[:2], ReleaseWindow())
    expected = only_after.windows().get(KEY[:2], ReleaseWindow())
    assert after_window.clusters.keys() == expected.clusters.keys()
    for name, row in expected.clusters.items():
        assert after_window.clusters[name] == pytest.approx(row, abs=1e-9)
    assert dict(after_window.latency_cells) == dict(expected.latency_cells)
    assert dict(after_window.ttft_cells) == dict(expected.ttft_cells)
    assert after_window.latency_histogram == expected.latency_histogram
    assert (after_window.requests, after_window.errors, after_window.fallbacks) == (
        expected.requests,
        expected.errors,
        expected.fallbacks,
    )
    assert after_window.guardrail_flags == expected.guardrail_flags
    assert after_window.custom.keys() == expected.custom.keys()
    _check_sums(after_window)


def test_counts_land_in_the_request_cluster() -> None:
    t = Telemetry()
    t.success(KEY, 100.0, 1, 1, cluster=5, flagged=True, ttft_ms=20.0)
    t.success(KEY, 100.0, 1, 1, cluster=5)
    t.failure(KEY, "timeout", cluster=63, fallback=True)
    t.rejection(KEY, cluster=0, flagged=True)
    t.feedback(KEY, 0.5, cluster=7)
    w = t.windows()[KEY[:2]]
    assert w.clusters["requests"][5] == 2 and w.clusters["requests"][63] == 1
    assert w.clusters["requests"][0] == 1 and sum(w.clusters["requests"]) == w.requests == 4
    assert w.clusters["errors"][63] == w.clusters["fallbacks"][63] == 1
    assert w.clusters["guardrail_flags"][5] == w.clusters["guardrail_flags"][0] == 1
    assert (w.clusters["feedback_count"][7], w.clusters["feedback_sum"][7]) == (1, 0.5)
    assert dict(w.latency_cells) == {5 * CELLS + latency_cell(100.0): 2}
    # time to first token of the streamed answer, in its own cells
    assert dict(w.ttft_cells) == {5 * CELLS + latency_cell(20.0): 1}
    assert latency_cell(20.0) != latency_cell(100.0)


def test_custom_metric_counts_successes_and_trials() -> None:
    t = Telemetry()
    t.custom(KEY, "helpful", 1.0, 3)
    t.custom(KEY, "helpful", 0.25, 3)
    t.custom(KEY, "helpful", 0.0, 9)
    t.custom(KEY, "grounded", 1.0, 9)
    w = t.windows()[KEY[:2]]
    assert dict(w.custom) == {"helpful": (1.25, 3.0), "grounded": (1.0, 1.0)}
    successes = w.clusters[custom_field("helpful", "successes")]
    trials = w.clusters[custom_field("helpful", "trials")]
    assert (successes[3], trials[3], successes[9], trials[9]) == (1.25, 2.0, 0.0, 1.0)
    assert w.requests == 0 and sum(w.clusters["requests"]) == 0  # rows present, zero
    (record,) = t.drain()
    assert dict(record.custom) == dict(w.custom)
    assert record.window() == w
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(InvalidInput, match="helpful"):
            t.custom(KEY, "helpful", bad, 3)
    assert t.windows()[KEY[:2]] == w  # nothing half-counted


def _record(seed: int) -> TelemetryRecord:
    rng = random.Random(seed)
    t = Telemetry()
    for _ in range(200):
        _apply(
            t,
            KEY,
            (
                rng.choice(["success", "stream", "failure", "fallback", "rejection", "feedback"]),
                rng.randrange(CLUSTERS),
                rng.lognormvariate(5, 1.5),
                rng.random() < 0.2,
            ),
        )
    (record,) = t.drain()
    return record


def test_record_carries_everything_and_detail_json_round_trips() -> None:
    record = _record(1)
    window = record.window()
    assert window.clusters and window.latency_cells and window.ttft_cells and window.custom
    assert window.clusters == record.clusters
    data = record.to_dict()
    assert set(data["clusters"]) == set(record.clusters)
    assert data["custom"] == {"helpful": list(record.custom["helpful"])}
    assert sum(data["latency_cells"].values()) == window.latency_count
    assert ReleaseWindow.from_dict({k: data[k] for k in window.to_dict()}) == window

    text = record.detail_json()
    assert text is not None and " " not in text
    detail = parse_detail(text)
    back = ReleaseWindow(
        requests=window.requests,
        errors=window.errors,
        guardrail_flags=window.guardrail_flags,
        fallbacks=window.fallbacks,
        feedback_sum=window.feedback_sum,
        feedback_count=window.feedback_count,
        latency_histogram=window.latency_histogram,
        custom=detail.custom,
        clusters=detail.clusters,
        latency_cells=detail.latency_cells,
        ttft_cells=detail.ttft_cells,
    )
    assert back == window
    # records add up with their detail
    both = record + _record(2)
    assert both.window() == window + _record(2).window()
    # nothing to store: no detail; unreadable detail: a clear error
    now = datetime.now(UTC)
    assert TelemetryRecord("chat", "x", "live", now, now, shadow_drops=1).detail_json() is None
    assert parse_detail(None).clusters == {}
    with pytest.raises(InvalidInput, match="telemetry detail"):
        parse_detail('{"clusters": 3}')


def test_canonical_clusters_drop_zero_rows_and_complete_the_fields() -> None:
    zeros = [0.0] * CLUSTERS
    one = [0.0] * CLUSTERS
    one[4] = 1.0
    assert canonical_clusters({"requests": zeros, "errors": zeros}) == {}
    rows = canonical_clusters({"errors": one, custom_field("m", "trials"): one})
    assert set(rows) == {
        *CLUSTER_FIELDS,
        custom_field("m", "trials"),
        custom_field("m", "successes"),
    }
    assert rows["requests"] == tuple(zeros) and rows["errors"] == tuple(one)
    # float residue of a subtraction never goes negative
    residue = [-1e-17] + [0.0] * (CLUSTERS - 1)
    assert canonical_clusters({"feedback_sum": residue, "requests": one})["feedback_sum"] == tuple(
        zeros
    )
    text = detail_json(rows, {}, {}, {})
    assert text is not None and '"requests"' not in text  # all-zero rows are not stored
    assert parse_detail(text).clusters == rows


def test_record_rejects_a_short_cluster_row() -> None:
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput, match="clusters"):
        TelemetryRecord(
            "chat", "x", "live", now, now + timedelta(seconds=1), clusters={"requests": (1.0,)}
        )

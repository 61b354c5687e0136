"""``GET /metrics``: Prometheus exposition of the gateway's telemetry, per release.

A custom collector reads the in-memory totals at scrape time, so the request
path never touches prometheus-client's locks and nothing is counted twice.
Every series has ``service`` and ``release`` labels (``traffic`` = live or
shadow where it applies); the latency histogram uses the same log-spaced
buckets as the rollout analysis (``LATENCY_BUCKETS_MS``), in seconds.

A fleet's replica lags when ``airlock_plan_generation{service}`` (what it serves) is
below ``airlock_plan_catalog_generation{service}`` (what the catalog held at its last
sync, ``airlock_plan_last_sync_timestamp_seconds``), or below another replica's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from airlock.core.analysis import LATENCY_BUCKETS_MS
from airlock.core.traffic import TrafficPlan
from airlock.gateway.access import KeyRing
from airlock.gateway.feedback import FeedbackLedger
from airlock.gateway.quality import OnlineQuality
from airlock.gateway.telemetry import Counters, Key, Telemetry

SyncState = Callable[[], tuple[float | None, Mapping[str, int]]]
"""When the catalog was last read (epoch s, None: not yet) and its plan generations then."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BOUNDS_S = tuple(b / 1000.0 for b in LATENCY_BUCKETS_MS)


class GatewayCollector(Collector):
    def __init__(
        self,
        telemetry: Telemetry,
        plans: Callable[[], Mapping[str, TrafficPlan]],
        shadow_queue_depth: Callable[[], int],
        in_flight: Callable[[], int] = lambda: 0,
        sync_state: SyncState | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.plans = plans
        self.shadow_queue_depth = shadow_queue_depth
        self.in_flight = in_flight
        self.sync_state = sync_state

    def collect(self) -> Iterator[Metric]:
        totals: dict[Key, Counters] = self.telemetry.totals()
        labels = ["service", "release", "traffic"]
        requests = CounterMetricFamily(
            "airlock_gateway_requests", "Calls made to a release.", labels=labels
        )
        errors = CounterMetricFamily(
            "airlock_gateway_errors",
            "Calls that failed on the release's side, by kind.",
            labels=[*labels, "kind"],
        )
        rejected = CounterMetricFamily(
            "airlock_gateway_rejected",
            "Calls refused as the client's fault or blocked by an input guardrail.",
            labels=labels,
        )
        fallbacks = CounterMetricFamily(
            "airlock_gateway_fallbacks",
            "Failed candidate calls answered by the stable release instead.",
            labels=labels,
        )
        flags = CounterMetricFamily(
            "airlock_gateway_guardrail_flags",
            "Requests with at least one guardrail match.",
            labels=labels,
        )
        tokens = CounterMetricFamily(
            "airlock_gateway_tokens", "Tokens in and out.", labels=[*labels, "direction"]
        )
        drops = CounterMetricFamily(
            "airlock_gateway_shadow_dropped",
            "Shadow copies dropped because the shadow queue was full.",
            labels=["service", "release"],
        )
        feedback_sum = CounterMetricFamily(
            "airlock_gateway_feedback_score_sum", "Sum of user feedback scores.", labels=labels
        )
        feedback_count = CounterMetricFamily(
            "airlock_gateway_feedback", "User feedback scores received.", labels=labels
        )
        latency = HistogramMetricFamily(
            "airlock_gateway_request_latency_seconds",
            "Latency of successful calls, request received to last byte.",
            labels=labels,
        )
        for (service, release, traffic), c in sorted(totals.items()):
            values = [service, release, traffic]
            requests.add_metric(values, c.requests)
            for kind, n in sorted(c.errors_by_kind.items()):
                errors.add_metric([*values, kind], n)
            rejected.add_metric(values, c.rejected)
            fallbacks.add_metric(values, c.fallbacks)
            flags.add_metric(values, c.guardrail_flags)
            tokens.add_metric([*values, "in"], c.tokens_in)
            tokens.add_metric([*values, "out"], c.tokens_out)
            feedback_sum.add_metric(values, c.feedback_sum)
            feedback_count.add_metric(values, c.feedback_count)
            if c.shadow_drops:
                drops.add_metric([service, release], c.shadow_drops)
            running, buckets = 0, []
            for bound, count in zip(_BOUNDS_S, c.histogram, strict=False):
                running += count
                buckets.append((_fmt(bound), float(running)))
            buckets.append(("+Inf", float(sum(c.histogram))))
            latency.add_metric(values, buckets, c.latency_ms_sum / 1000.0)
        yield from (requests, errors, rejected, fallbacks, flags, tokens, drops)
        yield from (feedback_sum, feedback_count, latency)

        generation = GaugeMetricFamily(
            "airlock_gateway_plan_generation",
            "Generation of the served traffic plan.",
            labels=["service"],
        )
        weight = GaugeMetricFamily(
            "airlock_gateway_release_weight_bp",
            "Share of user traffic per release in basis points (shadows: 0).",
            labels=["service", "release", "role"],
        )
        for name, plan in sorted(self.plans().items()):
            generation.add_metric([name], plan.generation)
            weight.add_metric([name, plan.stable, "stable"], plan.stable_weight())
            for cand in plan.candidates:
                weight.add_metric([name, cand.release, "candidate"], cand.weight)
            for s in plan.shadows:
                weight.add_metric([name, s, "shadow"], 0)
        depth = GaugeMetricFamily(
            "airlock_gateway_shadow_queue_depth", "Shadow copies waiting to be sent."
        )
        depth.add_metric([], self.shadow_queue_depth())
        in_flight = GaugeMetricFamily(
            "airlock_gateway_requests_in_flight",
            "Completion requests received and not yet answered to the last byte.",
        )
        in_flight.add_metric([], self.in_flight())
        yield from (generation, weight, depth, in_flight)
        yield from self._fleet()

    def _fleet(self) -> Iterator[Metric]:
        """The plan generation this replica serves against the catalog's, and the last sync."""
        served = GaugeMetricFamily(
            "airlock_plan_generation",
            "Plan generation this replica serves, per service.",
            labels=["service"],
        )
        for name, plan in sorted(self.plans().items()):
            served.add_metric([name], plan.generation)
        yield served
        if self.sync_state is None:
            return
        last, catalog = self.sync_state()
        stored = GaugeMetricFamily(
            "airlock_plan_catalog_generation",
            "Plan generation the catalog held at this replica's last sync, per service.",
            labels=["service"],
        )
        for name, gen in sorted(catalog.items()):
            stored.add_metric([name], gen)
        synced = GaugeMetricFamily(
            "airlock_plan_last_sync_timestamp_seconds",
            "When this replica last read the catalog's plan generations (Unix time).",
        )
        if last is not None:
            synced.add_metric([], last)
        yield from (stored, synced)


class AccessCollector(Collector):
    """Per gateway key: requests, tokens, refusals by reason; refused feedback by reason.

    Keys are labelled by their public id and name (``key_id="-"`` for callers without
    a valid key), never by their secret."""

    def __init__(self, ring: KeyRing, ledger: FeedbackLedger) -> None:
        self.ring = ring
        self.ledger = ledger

    def collect(self) -> Iterator[Metric]:
        labels = ["service", "key_id", "key_name"]
        requests = CounterMetricFamily(
            "airlock_gateway_key_requests", "Requests admitted per gateway key.", labels=labels
        )
        tokens = CounterMetricFamily(
            "airlock_gateway_key_tokens",
            "Tokens in and out per gateway key.",
            labels=[*labels, "direction"],
        )
        refused = CounterMetricFamily(
            "airlock_gateway_key_rejected",
            "Requests refused at the door: missing, invalid, revoked, expired, wrong_service, "
            "rpm, tpm.",
            labels=[*labels, "reason"],
        )
        for who, c in sorted(
            self.ring.counters.items(), key=lambda kv: (kv[0].service, kv[0].key_id)
        ):
            values = [who.service, who.key_id, who.key_name]
            if who.key_id != "-":
                requests.add_metric(values, c.requests)
                tokens.add_metric([*values, "in"], c.tokens_in)
                tokens.add_metric([*values, "out"], c.tokens_out)
            for reason, n in sorted(c.rejected.items()):
                refused.add_metric([*values, reason], n)
        feedback = CounterMetricFamily(
            "airlock_gateway_feedback_rejected",
            "Feedback refused, by reason (forged, expired, another key's, ...).",
            labels=["reason"],
        )
        for reason, n in sorted(self.ledger.rejected.items()):
            feedback.add_metric([reason], n)
        yield from (requests, tokens, refused, feedback)


class QualityCollector(Collector):
    """Online scoring: samples scored or dropped per release; judge calls and tokens."""

    def __init__(self, quality: OnlineQuality) -> None:
        self.quality = quality

    def collect(self) -> Iterator[Metric]:
        samples = CounterMetricFamily(
            "airlock_quality_samples",
            "Sampled answers scored, or dropped because the scoring queue was full.",
            labels=["service", "release", "outcome"],
        )
        for (service, release, outcome), n in sorted(self.quality.samples.items()):
            samples.add_metric([service, release, outcome], n)
        calls = CounterMetricFamily(
            "airlock_judge_calls",
            "Calls to a judge release: ok, failed, timeout, unreadable (never the candidate's).",
            labels=["judge", "outcome"],
        )
        for (judge, outcome), n in sorted(self.quality.judge_calls.items()):
            calls.add_metric([judge, outcome], n)
        cost = self.quality.judge_cost
        tokens = CounterMetricFamily(
            "airlock_judge_tokens", "Tokens spent on judging.", labels=["direction"]
        )
        tokens.add_metric(["in"], cost.prompt_tokens)
        tokens.add_metric(["out"], cost.completion_tokens)
        depth = GaugeMetricFamily(
            "airlock_quality_queue_depth", "Sampled answers waiting to be scored."
        )
        depth.add_metric([], self.quality.queue.depth)
        yield from (samples, calls, tokens, depth)


def _fmt(bound: float) -> str:
    return f"{bound:.6g}"


def make_registry(*collectors: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


__all__ = [
    "CONTENT_TYPE",
    "AccessCollector",
    "GatewayCollector",
    "QualityCollector",
    "SyncState",
    "make_registry",
    "render",
]

"""The OpenAI-compatible gateway: routing by traffic plan, shadows, fallback, guardrails,
telemetry and ``/metrics``. :class:`Gateway` is the engine (the rollout controller drives
it in-process), :func:`create_app` its ASGI face, :class:`CatalogSync` its link to the
catalog.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from airlock.gateway.app import create_app
from airlock.gateway.engine import Answer, ContentBlocked, Gateway, GatewaySettings, ServiceState
from airlock.gateway.sync import CatalogSync
from airlock.gateway.telemetry import Telemetry, TelemetryMark

__all__ = [
    "Answer",
    "CatalogSync",
    "ContentBlocked",
    "Gateway",
    "GatewaySettings",
    "ServiceState",
    "Telemetry",
    "TelemetryMark",
    "create_app",
]

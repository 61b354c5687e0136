"""Which release answers a request: the plan's sticky choice, a pin, or an opt-out.

The OpenAI ``model`` field names a service (``chat``) or pins a release of it
(``chat@1.2.0``, or ``chat@stable``). A pin must name a release the service
serves (its plan, or the previous plan's, which stays loaded). A user on the
service's opt-out list, or a request with ``X-Airlock-Opt-Out: 1``, always gets
the stable release. Everyone else is routed by ``TrafficPlan.route(user_key)``,
where the user key is the request's ``user`` field, else the ``X-Airlock-User``
header, else the ``X-Airlock-Session`` header; a request with none of them is
routed by a random key (not sticky).

A candidate's request carries ``fallback``: the stable release that answers
when the candidate fails. Pinned and opted-out requests have none.

Every route carries the routing ``bucket`` of its user key (the random key's
for a request without one), and so the analysis ``cluster`` its telemetry is
counted in, whatever the reason of the route.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from airlock.core.traffic import TrafficPlan, bucket_of
from airlock.core.window import cluster_of
from airlock.errors import InvalidInput, NotFound

RouteReason = Literal["plan", "pinned", "opt_out"]


@dataclass(frozen=True, slots=True)
class Route:
    release: str
    reason: RouteReason
    fallback: str | None = None
    bucket: int = 0

    @property
    def cluster(self) -> int:
        """The analysis cluster this request is counted in (``cluster_of(bucket)``)."""
        return cluster_of(self.bucket)


def split_model(model: str) -> tuple[str, str | None]:
    """``"chat@1.2.0"`` -> ``("chat", "1.2.0")``; ``"chat"`` -> ``("chat", None)``."""
    if not isinstance(model, str) or not model:
        raise InvalidInput("model must name a service, e.g. 'chat' or 'chat@1.2.0'")
    service, sep, selector = model.partition("@")
    if not service or (sep and not selector):
        raise InvalidInput(
            f"invalid model {model!r}", hint="use SERVICE or SERVICE@VERSION, e.g. chat@1.2.0"
        )
    return service, (selector or None)


def resolve_pin(plan: TrafficPlan, selector: str, servable: Collection[str]) -> str:
    """The release a pin names: ``stable``, a full ``name@version`` or just a version."""
    if selector == "stable":
        return plan.stable
    if selector == "candidate" and plan.candidates:
        return plan.candidates[-1].release
    for ref in servable:
        if ref == selector or ref.rpartition("@")[2] == selector:
            return ref
    known = ", ".join(sorted(servable)) or "none"
    raise NotFound(
        f"service {plan.service} does not serve version {selector!r}",
        hint=f"pin one of: {known}, or use 'stable'",
    )


def choose(
    plan: TrafficPlan,
    *,
    user_key: str | None,
    pinned: str | None,
    opted_out: bool,
    servable: Collection[str],
) -> Route:
    bucket = bucket_of(plan.service, user_key if user_key else secrets.token_hex(8))
    if pinned is not None:
        return Route(resolve_pin(plan, pinned, servable), "pinned", bucket=bucket)
    if opted_out:
        return Route(plan.stable, "opt_out", bucket=bucket)
    release = plan.release_at(bucket)
    return Route(release, "plan", None if release == plan.stable else plan.stable, bucket)


__all__ = ["Route", "RouteReason", "choose", "resolve_pin", "split_model"]

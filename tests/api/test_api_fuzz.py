"""Schemathesis over /openapi.json: whatever a client sends, the API never answers 5xx.

Every operation gets a handful of generated requests (valid and not), sent as
the admin to the real app on a workspace with releases, a service and a policy.
Kept small (a few examples per operation) so it runs in seconds; raise
``AIRLOCK_FUZZ_EXAMPLES`` to dig deeper.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from api_support import Lumen
from hypothesis import HealthCheck, given, settings

from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.demo import scenario
from airlock.services.governance import Governance
from airlock.services.identity import Actor

EXAMPLES = int(os.environ.get("AIRLOCK_FUZZ_EXAMPLES", "4"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_operation_answers_a_server_error(lumen: Lumen) -> None:
    Governance(lumen.ws).set_policy("lumen", scenario.POLICY, actor=Actor("alice", "admin"))
    app = create_app(lumen.ws, authenticate=token_authenticator(lumen.ws))
    # Drills run inside `airlock serve` (tests/web/test_serve.py); here a stub takes them,
    # so a generated request that happens to be valid gets 202 rather than 503.
    app.state.drill_runner = lambda *args: None
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = lumen.auth("alice")
    failures: list[str] = []
    calls: list[str] = []
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 30

    for operation in operations:
        strategy = operation.as_strategy()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def probe(case: schemathesis.Case) -> None:
            calls.append(case.method)
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}"
                )

        probe()
    assert failures == []
    assert len(calls) >= 2 * len(operations)  # every operation was exercised

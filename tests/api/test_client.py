"""airlock.Client against the real API app: answers as JSON, errors as the Airlock error tree."""

from __future__ import annotations

import pytest
from api_support import Lumen
from starlette.testclient import TestClient

import airlock
from airlock.api.app import create_app
from airlock.api.auth import token_authenticator


def client_for(lumen: Lumen, user: str) -> airlock.Client:
    app = create_app(lumen.ws, authenticate=token_authenticator(lumen.ws))
    return airlock.Client("http://testserver", lumen.tokens[user], http=TestClient(app))


def test_reads_and_decisions(lumen: Lumen) -> None:
    with client_for(lumen, "bob") as api:
        assert api.whoami()["role"] == "approver"
        assert [m["name"] for m in api.models()] == ["lumen"]
        assert [r["version"] for r in api.releases("lumen")] == ["1.0.0", "1.1.0"]
        assert api.release("lumen@1.1.0")["manifest"]["lineage"]["parent"] == "lumen@1.0.0"
        assert api.approve("lumen@1.1.0", stage="production")["recorded"] is True
        assert [a["actor"] for a in api.approvals("lumen@1.1.0")] == ["bob"]
        assert "## Approvals" in api.notes("lumen@1.1.0")
        assert api.service("lumen-support")["stable"] == "lumen@1.0.0"
        assert api.verify_audit()["ok"] is True
        events = api.events(action="release.approve")["events"]
        assert [e["actor"] for e in events] == ["bob"]


@pytest.mark.parametrize(
    ("user", "call", "error"),
    [
        ("carol", lambda api: api.approve("lumen@1.1.0", stage="production"), airlock.Forbidden),
        ("bob", lambda api: api.release("lumen@9.0.0"), airlock.NotFound),
        ("bob", lambda api: api.release("Lumen@x"), airlock.InvalidInput),
        (
            "bob",
            lambda api: api.reject("lumen@1.1.0", stage="prod", comment=""),
            airlock.InvalidInput,
        ),
        ("vic", lambda api: api.set_policy("lumen", "stages: {}"), airlock.Forbidden),
    ],
)
def test_errors_are_the_airlock_error_tree(
    lumen: Lumen, user: str, call: object, error: type[airlock.AirlockError]
) -> None:
    with client_for(lumen, user) as api, pytest.raises(error) as info:
        call(api)  # type: ignore[operator]
    assert info.value.message
    assert info.value.hint


def test_an_unreachable_server_is_service_unavailable() -> None:
    api = airlock.Client("http://127.0.0.1:9", "alk_x", timeout=2)
    with api, pytest.raises(airlock.ServiceUnavailable) as info:
        api.models()
    assert "airlock serve" in info.value.hint

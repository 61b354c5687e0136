"""Gateway keys in the catalog on SQLite and PostgreSQL: the sync versions gateways poll
move with every key and opt-out change, and the fleet's response-id secret is made once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from airlock.catalog.gateway_keys import KEYS_TOPIC, opt_outs_topic
from airlock.services.gateway_keys import GatewayKeys
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace

ADMIN = Actor("alice", "admin")


def test_versions_move_with_keys_and_opt_outs(
    workspace: Workspace, make_model: Callable[..., Path]
) -> None:
    Registry(workspace).push(make_model(seed=1), name="chat", version="1.0.0", actor=ADMIN)
    serving = Serving(workspace)
    serving.create("chat", "chat@1.0.0", actor=ADMIN)
    keys = GatewayKeys(workspace)
    assert keys.versions() == {}

    issued = keys.create(service="chat", name="web", actor=ADMIN)
    keys.create(service="chat", name="batch", actor=ADMIN)
    assert keys.versions() == {KEYS_TOPIC: 2}
    keys.revoke(issued.key.id, actor=ADMIN)
    keys.revoke(issued.key.id, actor=ADMIN)  # already revoked: nothing changes
    assert keys.versions()[KEYS_TOPIC] == 3

    assert serving.set_opt_out("chat", "user-7", actor=ADMIN)
    assert not serving.set_opt_out("chat", "user-7", actor=ADMIN)  # no change, no bump
    serving.set_opt_out("chat", "user-7", actor=ADMIN, opted_out=False)
    assert keys.versions()[opt_outs_topic("chat")] == 2
    assert [k.name for k in keys.snapshot()] == ["web", "batch"]

    secret = keys.response_secret()
    assert len(secret) == 32 and GatewayKeys(workspace).response_secret() == secret

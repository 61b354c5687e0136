"""What the API tests share: the roles of the test users and the Lumen workspace handle."""

from __future__ import annotations

from dataclasses import dataclass

from airlock.services.workspace import Workspace

ROLES = {
    "alice": "admin",
    "bob": "approver",
    "carol": "author",
    "olga": "operator",
    "vic": "viewer",
}


@dataclass(frozen=True)
class Lumen:
    ws: Workspace
    tokens: dict[str, str]  # user -> secret

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

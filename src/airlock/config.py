"""Settings: where the workspace lives and which database and store it uses.

Built once from the environment (``Settings.from_env``) and passed in; no
module-level mutable configuration.

=======================  ===================================================
``AIRLOCK_HOME``          the workspace folder (default: ``./.airlock``, or the
                          nearest ``.airlock`` folder above the current one)
``AIRLOCK_DATABASE_URL``  catalog database (default: SQLite in the workspace)
``AIRLOCK_STORE_URL``     blob store (default: the workspace's ``blobs/``)
``AIRLOCK_USER``          who acts (default: the login name)
``AIRLOCK_TOKEN``         the caller's API token (default: the workspace's token
                          file; see ``services/tokens.py``)
``AIRLOCK_WORKERS``       threads for hashing (default: one per core)
``AIRLOCK_AUTO_MIGRATE``  1: any process may migrate an older PostgreSQL catalog on
                          start (default: only ``airlock db upgrade`` does; SQLite
                          catalogs are always upgraded on open)
=======================  ===================================================
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

WORKSPACE_DIR = ".airlock"
TOKEN_ENV = "AIRLOCK_TOKEN"


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str | None = None
    store_url: str | None = None
    user: str = "local"
    workers: int = 0  # 0: one per core
    telemetry_raw_hours: int = 48  # per-second telemetry kept this long, then per minute
    telemetry_minute_days: int = 30  # per-minute telemetry kept this long, then per hour
    auto_migrate: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Settings:
        env = os.environ if env is None else env
        here = cwd or Path.cwd()
        home = Path(env["AIRLOCK_HOME"]) if env.get("AIRLOCK_HOME") else find_home(here)
        try:
            default_user = getpass.getuser()
        except (KeyError, OSError):
            default_user = "local"
        return cls(
            home=home.absolute(),
            database_url=env.get("AIRLOCK_DATABASE_URL") or None,
            store_url=env.get("AIRLOCK_STORE_URL") or None,
            user=env.get("AIRLOCK_USER") or default_user,
            workers=_int(env.get("AIRLOCK_WORKERS"), "AIRLOCK_WORKERS"),
            telemetry_raw_hours=_int(
                env.get("AIRLOCK_TELEMETRY_RAW_HOURS"), "AIRLOCK_TELEMETRY_RAW_HOURS"
            )
            or 48,
            telemetry_minute_days=_int(
                env.get("AIRLOCK_TELEMETRY_MINUTE_DAYS"), "AIRLOCK_TELEMETRY_MINUTE_DAYS"
            )
            or 30,
            auto_migrate=_flag(env.get("AIRLOCK_AUTO_MIGRATE"), "AIRLOCK_AUTO_MIGRATE"),
        )

    def with_user(self, user: str) -> Settings:
        return replace(self, user=user)

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def worker_count(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)


def _int(value: str | None, name: str) -> int:
    if not value:
        return 0
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        from airlock.errors import InvalidInput

        raise InvalidInput(
            f"{name}={value!r} is not a whole number ≥ 0", hint=f"unset {name} or fix it"
        )
    return number


def _flag(value: str | None, name: str) -> bool:
    raw = (value or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    from airlock.errors import InvalidInput

    raise InvalidInput(f"{name}={value!r} is not 1 or 0", hint=f"unset {name}, or set it to 1")


def find_home(start: Path) -> Path:
    """The nearest ``.airlock`` folder at or above ``start``; else ``start/.airlock``."""
    for folder in (start, *start.parents):
        if (folder / WORKSPACE_DIR).is_dir():
            return folder / WORKSPACE_DIR
    return start / WORKSPACE_DIR

"""``airlock rollout status --watch``: the real CLI follows a rollout the test drives to its end.

The CLI runs as its own process with its output piped (one line per change); the test
reads each line before driving the rollout one step further (telemetry flushes and
controller ticks, as tests/rollout/test_rollout_service.py drives them), so every
change is seen and nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest

from airlock.config import Settings
from airlock.core.rollout_view import RolloutView
from airlock.core.telemetry import Traffic
from airlock.services.workspace import Workspace
from airlock_testkit import Cli
from gateway.support import MOON, Releases
from rollout.support import OPERATOR, Lab, canary, record, wait_until


@pytest.fixture
def lab(cli: Cli, tmp_path: Path) -> Iterator[Lab]:
    """The CLI's workspace (``airlock init``) with the service ``chat`` on 1.0.0."""
    cli("init")
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"))
    try:
        releases = Releases(ws, tmp_path / "folders")
        stable = releases.builtin("chat", "1.0.0", MOON)
        releases.builtin("chat", "1.1.0", MOON)
        lab = Lab(ws, releases)
        lab.serving.create("chat", stable, actor=OPERATOR, reason="launch")
        yield lab
    finally:
        ws.close()


@contextmanager
def _watch(
    home: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """The real CLI watching ``chat``, piped; stopped whatever happens to the test."""
    code = "from airlock.cli.main import run; run()"
    with subprocess.Popen(
        [sys.executable, "-c", code, "rollout", "status", "chat", "--watch", *extra],
        env={
            **os.environ,
            "AIRLOCK_HOME": str(home / ".airlock"),
            "COLUMNS": "300",
            **(env or {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watcher:
        try:
            yield watcher
        finally:
            watcher.kill()


def _line(out: IO[str] | None) -> str:
    assert out is not None
    return out.readline().strip()


def _flush(lab: Lab, view: RolloutView, *sides: tuple[str, Traffic, int, int]) -> None:
    start = datetime.fromtimestamp(view.state.step_started_at, UTC)
    lab.serving.flush(
        [record("chat", r, t, start, requests=n, errors=e) for r, t, n, e in sides],
        gateway="test-gateway",
    )


def _tick_until(lab: Lab, rollout_id: int, done: object) -> RolloutView:
    controller = lab.controller()

    def check() -> RolloutView | None:
        asyncio.run(controller.tick())
        view = lab.rollouts.get(rollout_id)
        return view if done(view) else None  # type: ignore[operator]

    return wait_until(check, what="the rollout to move")


def test_watch_prints_each_change_and_exits_0_when_the_rollout_completes(
    lab: Lab, tmp_path: Path
) -> None:
    view = lab.rollouts.start("chat", "chat@1.1.0", canary(50, 100, bake=0), actor=OPERATOR).rollout
    with _watch(tmp_path, "--interval", "0.05") as watcher:
        first = _line(watcher.stdout)
        assert f"rollout #{view.id} of chat (chat@1.1.0): progressing" in first
        assert "step 1/2: 50 % of users on the candidate" in first

        _flush(lab, view, ("chat@1.1.0", "live", 200, 0), ("chat@1.0.0", "live", 200, 0))
        step2 = _tick_until(lab, view.id, lambda v: v.state.step_index == 1)
        second = _line(watcher.stdout)
        assert "progressing — step 2/2: 100 % of users on the candidate" in second
        assert "analysis pass" in second

        # at 100 % every user is on the candidate and stable answers mirrored copies
        _flush(lab, step2, ("chat@1.1.0", "live", 200, 0), ("chat@1.0.0", "shadow", 200, 0))
        end = _tick_until(lab, view.id, lambda v: not v.live)
        rest = watcher.communicate(timeout=60)[0].strip().splitlines()
    assert end.phase in ("completed", "promoted")
    assert len(rest) == 1 and f": {end.phase} — " in rest[0]  # one line for the one change
    assert watcher.returncode == 0


def test_watch_exits_1_when_the_candidate_is_rolled_back(lab: Lab, tmp_path: Path) -> None:
    view = lab.rollouts.start("chat", "chat@1.1.0", canary(50, bake=60), actor=OPERATOR).rollout
    with _watch(tmp_path, "--interval", "0.05", "--json") as watcher:
        first = json.loads(_line(watcher.stdout))
        assert (first["id"], first["phase"]) == (view.id, "progressing")
        _flush(lab, view, ("chat@1.1.0", "live", 400, 200), ("chat@1.0.0", "live", 400, 0))
        end = _tick_until(lab, view.id, lambda v: not v.live)
        lines = watcher.communicate(timeout=60)[0].strip().splitlines()
    assert end.phase == "rolled_back"
    last = json.loads(lines[-1])
    assert last["phase"] == "rolled_back" and last["last_verdict"]["outcome"] == "fail"
    assert watcher.returncode == 1


def test_watch_of_an_ended_rollout_answers_at_once(lab: Lab, cli: Cli) -> None:
    view = lab.rollouts.start("chat", "chat@1.1.0", canary(50), actor=OPERATOR).rollout
    lab.rollouts.abort("chat", actor=OPERATOR, reason="wrong candidate")
    result = cli("rollout", "status", "chat", "--watch", ok=False)
    assert result.exit_code == 1
    assert f"rollout #{view.id} of chat (chat@1.1.0): aborted — wrong candidate" in result.output
    nothing = cli("rollout", "status", "nope", "--watch", ok=False)
    assert nothing.exit_code == 1 and "error:" in nothing.output


def _read_until(watcher: subprocess.Popen[str], word: str, timeout: float = 60.0) -> str:
    """What the watcher wrote until ``word`` appeared (read from the pipe's descriptor, so
    nothing sits in a reader's buffer that a later ``communicate`` would miss)."""
    assert watcher.stdout is not None
    fd, seen = watcher.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while word.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"the watcher did not write {word!r} in {timeout:g} s: {seen!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"the watcher ended before writing {word!r}: {seen!r}"
            seen += chunk
    return seen.decode(errors="replace")


def test_on_a_terminal_watch_redraws_the_status_until_the_end(lab: Lab, tmp_path: Path) -> None:
    view = lab.rollouts.start("chat", "chat@1.1.0", canary(50, bake=60), actor=OPERATOR).rollout
    # TTY_COMPATIBLE=1: Rich treats the pipe as a terminal, so the watcher uses Live redraws
    with _watch(tmp_path, "--interval", "0.05", env={"TTY_COMPATIBLE": "1"}) as watcher:
        before = _read_until(watcher, "progressing")  # it has drawn the live rollout
        lab.rollouts.abort("chat", actor=OPERATOR, reason="enough")
        after = watcher.communicate(timeout=60)[0]
    assert watcher.returncode == 1
    assert "progressing" in before and "aborted" in after  # drawn before, redrawn after
    screen = before + after
    assert "\x1b[" in screen  # cursor moves: a redraw, not appended lines
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert f"rollout #{view.id} of chat: aborted" in text and "enough" in text

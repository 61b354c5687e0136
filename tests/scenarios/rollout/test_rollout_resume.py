"""A controller process killed mid-rollout (SIGKILL: no clean-up) is replaced by another that
resumes the same rollout at the same step, on SQLite and PostgreSQL. The gateway runs in
this process and follows the plans through the catalog; the first controller is the real
``airlock controller`` command in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

from airlock.services.controller import LEASE
from airlock.services.tokens import Tokens, save_token
from gateway.support import MOON
from rollout.support import ALICE, Lab, Load, canary, wait_until


def _controller_process(lab: Lab, db_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AIRLOCK_HOME": str(lab.ws.home),
        "AIRLOCK_DATABASE_URL": db_url,
        "AIRLOCK_USER": "alice",
    }
    env.pop("AIRLOCK_TOKEN", None)
    code = "from airlock.cli.main import run; run()"
    argv = [sys.executable, "-c", code, "controller", "--tick", "0.05", "--lease", "1"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_killed_controller_is_resumed_at_the_same_step(lab: Lab, db_url: str) -> None:
    issued = Tokens(lab.ws).bootstrap("alice")
    assert issued is not None
    save_token(lab.ws.home, issued.secret)  # `airlock controller` runs as the workspace owner
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    candidate = lab.releases.builtin("chat", "1.1.0", MOON)
    lab.serving.create("chat", stable, actor=ALICE, reason="launch")
    spec = canary(
        20, 40, 60, 100, bake=0.2, min_requests=20, metrics={"latency": {"tolerance": 1.0}}
    )

    with lab.running(controller=False) as run, Load(run.server):
        rollout = lab.rollouts.start("chat", candidate, spec, actor=ALICE).rollout
        first = _controller_process(lab, db_url)
        try:
            wait_until(
                lambda: lab.rollouts.get(rollout.id).state.step_index >= 1,
                timeout=60,
                what="the first controller to advance",
            )
        finally:
            first.kill()  # SIGKILL: no lease release, no goodbye
            _, err = first.communicate(timeout=30)
        killed_at = datetime.now().astimezone()
        at_kill = lab.rollouts.get(rollout.id)
        assert at_kill.live, "the rollout finished before the kill; nothing to resume"
        holder = lab.rollouts.lease_holder(LEASE)
        assert holder is not None  # the dead controller still holds the lease ...

        second = lab.controller(gateway=run.gateway, lease_seconds=1.0)
        run.server.call(second.start())
        try:
            done = wait_until(
                lambda: None if (v := lab.rollouts.get(rollout.id)).live else v,
                timeout=60,
                what="the second controller to finish the rollout",
            )
        finally:
            run.server.call(second.stop())
        assert lab.rollouts.lease_holder(LEASE) is None  # released on a clean stop

    assert done.phase == "promoted", done.reason
    assert [r.id for r in lab.rollouts.recent("chat")] == [rollout.id]  # resumed, not restarted
    history = lab.rollouts.history(rollout.id)
    decisions = [h for h in history if h.action != "hold"]
    assert [h.action for h in decisions] == ["start", "advance", "advance", "advance", "promote"]
    assert [h.step_index for h in decisions] == [0, 1, 2, 3, 3]
    after = [h for h in decisions if h.at > killed_at]
    assert after, "the second controller made no decision"
    assert after[0].at >= holder[1]  # it acted only once the dead leader's lease had expired
    # The first decision after the restart continues from the step the rollout was at.
    assert after[0].step_index in (at_kill.state.step_index, at_kill.state.step_index + 1)
    assert all(h.actor == "airlock-controller" for h in decisions[1:])
    assert b"Traceback" not in err
    assert lab.releases.registry.resolve("chat@stable").ref == candidate

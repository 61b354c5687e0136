"""CLI start-up benchmark: wall time of quick commands, each a fresh process, vs ``python -c pass``.

In a temporary workspace holding a few releases, runs each command N times
(``--runs``, after one warm-up run that fills the bytecode and page caches) and
reports the median and the fastest wall time, the median CPU time (user + system:
less sensitive than wall time to a loaded machine), and the median minus the
interpreter's own start-up (``python -c pass``): what Airlock adds.

Targets (issue 14): ``airlock --help`` ≤ 0.15 s and ``airlock ls`` ≤ 0.3 s wall.
``--airlock PATH`` times another installation's ``airlock``; ``--before PATH`` also
times a second installation (e.g. the main checkout's ``.venv/bin/airlock``) in the
same interleaved runs, so a before/after table shares one machine load.

``--instructions`` also counts the instructions each command executes, once, under
valgrind (cachegrind, no cache simulation; a fixed hash seed): a figure that does not
move with the machine's load, for comparing two versions on a busy machine.

``PYTHONDONTWRITEBYTECODE`` is dropped from the commands' environment: an installed
package has its bytecode, so the warm-up run writes it and the timed runs use it (with
it set, every run compiled Airlock's modules again: ~15 % of ``airlock ls``).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._report import report

AIRLOCK = str(Path(sys.executable).with_name("airlock"))
TARGETS = {"airlock --help": 0.15, "airlock ls": 0.3}


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _run(cmd: list[str], env: dict[str, str], cwd: Path, cpu: list[float] | None = None) -> float:
    """The command's wall time; its CPU time (user + system) is appended to ``cpu``."""
    cpu_before = _cpu()
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    if cpu is not None:
        cpu.append(_cpu() - cpu_before)
    return wall


def _instructions(cmd: list[str], env: dict[str, str], cwd: Path) -> int | None:
    """Instructions ``cmd`` executes (valgrind), or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    done = subprocess.run(
        [
            valgrind,
            "--tool=cachegrind",
            "--cache-sim=no",
            "--trace-children=yes",  # through a wrapper script's exec
            "--cachegrind-out-file=/dev/null",
            *cmd,
        ],
        env={**env, "PYTHONHASHSEED": "0"},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    counts = re.findall(r"I\s+refs:\s+([\d,]+)", done.stderr)
    return int(counts[-1].replace(",", "")) if done.returncode == 0 and counts else None


def _workspace(airlock: str, env: dict[str, str], root: Path, releases: int, tag: str) -> str:
    """``airlock init`` and ``releases`` small releases of ``chat``; returns the last ref."""
    _run([airlock, "init"], env, root)
    folder = root / f"model-{tag}"
    folder.mkdir()
    (folder / "config.json").write_text('{"architecture": "bench"}')
    ref = ""
    for i in range(releases):
        (folder / "weights.txt").write_text(f"weights {i}\n" * 100)
        ref = f"chat@1.0.{i}"
        _run([airlock, "push", str(folder), "--name", "chat", "--version", f"1.0.{i}"], env, root)
    return ref


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cli", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="Runs per command (median).")
    parser.add_argument("--releases", type=int, default=5, help="Releases in the workspace.")
    parser.add_argument("--airlock", default=AIRLOCK, help="The airlock executable to time.")
    parser.add_argument("--before", help="Another airlock executable to time alongside.")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="Also count each command's instructions once under valgrind (load-independent).",
    )
    args = parser.parse_args(argv)
    airlock = shutil.which(args.airlock) or args.airlock
    python = str(Path(airlock).with_name("python"))
    before = (shutil.which(args.before) or args.before) if args.before else None
    root = Path(tempfile.mkdtemp(prefix="airlock-bench-cli-"))
    base_env = {
        **os.environ,
        "AIRLOCK_USER": "alice",
        "AIRLOCK_NO_PROGRESS": "1",
        "COLUMNS": "120",
    }
    base_env.pop("AIRLOCK_URL", None)  # a local workspace: no remote transport
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)  # time what users run: cached bytecode
    try:
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([python, "-c", "pass"], base_env)
        }
        for label, exe in (("before: ", before), ("", airlock)):
            if exe is None:
                continue
            # one workspace per installation: each migrates its own catalog
            env = {**base_env, "AIRLOCK_HOME": str(root / f"{label.strip(': ') or 'now'}")}
            ref = _workspace(exe, env, root, args.releases, label.strip(": ") or "now")
            quick = [["--version"], ["--help"], ["ls"], ["ls", "chat"], ["show", ref]]
            commands.update({f"{label}airlock {' '.join(q)}": ([exe, *q], env) for q in quick})
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for cmd, env in commands.values():
            _run(cmd, env, root)  # warm-up: bytecode and page caches
        for _ in range(args.runs):  # interleaved, so a burst of load hits every command alike
            for name, (cmd, env) in commands.items():
                walls[name].append(_run(cmd, env, root, cpus[name]))
        instructions = {
            name: _instructions(cmd, env, root) if args.instructions else None
            for name, (cmd, env) in commands.items()
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = statistics.median(walls["python -c pass"])
    rows: list[list[object]] = []
    results: dict[str, dict[str, float | bool | None]] = {}
    ok = True
    for name, times in walls.items():
        median = statistics.median(times)
        target = TARGETS.get(name)  # the "before: " rows are for comparison only
        passed = None if target is None else median <= target
        ok = ok and passed is not False
        results[name] = {
            "median_s": median,
            "min_s": min(times),
            "cpu_median_s": statistics.median(cpus[name]),
            "over_python_s": median - base,
            "instructions": instructions[name],
            "target_s": target,
            "pass": passed,
        }
        rows.append(
            [
                name,
                f"{median:.3f}",
                f"{min(times):.3f}",
                f"{statistics.median(cpus[name]):.3f}",
                "—" if name == "python -c pass" else f"{median - base:+.3f}",
                "—" if instructions[name] is None else f"{instructions[name] / 1e6:,.0f}",
                "—" if target is None else f"≤ {target:g}",
                "—" if passed is None else ("pass" if passed else "FAIL"),
            ]
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report(
        "cli",
        ["command", "median s", "min s", "cpu s", "over python", "M instr", "target", "result"],
        rows,
        {"runs": args.runs, "airlock": airlock, "load_average_1m": load, "results": results},
    )
    if load is not None and load > (os.cpu_count() or 1):
        print(f"note: load average {load:.1f} on {os.cpu_count()} cores: times are inflated")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

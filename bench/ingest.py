"""Ingest benchmark: push / verify / re-push a sharded safetensors model vs ``sha256sum``.

Builds an N-GiB model of 8 safetensors shards in a temporary folder, reads it once
to warm the page cache for every contender alike, then times in the same run:

- ``sha256sum`` over the shard files (the reference, one process),
- ``airlock push`` (the real CLI; hashing while copying, one thread per core),
- ``airlock push`` with ``AIRLOCK_WORKERS=1`` (is parallel hashing faster? measured),
- ``airlock verify`` (re-hash every stored blob),
- a second ``airlock push`` of a new version with 1 of the 8 shards changed.

Targets (issue 2): push ≤ 0.6× sha256sum, verify ≤ 0.6×, re-push ≤ 0.2× the first
push and storing only the changed shard.

``--remote`` (issue 13) measures the remote path instead: ``airlock serve`` on
loopback, and ``airlock push`` from a second folder with only ``AIRLOCK_URL`` and a
token (hash locally, ask which blobs are missing, upload them, commit), vs
``sha256sum``; then the same push again (nothing travels) and a push with one shard
changed, counting the bytes sent (the CLI's own count, and the server store's growth).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from bench._report import report

AIRLOCK = str(Path(sys.executable).with_name("airlock"))


def build_model(folder: Path, total_bytes: int, shards: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    per = total_bytes // shards // 4  # float32 elements per shard
    cols = 4096
    rows = max(1, per // cols)
    paths = []
    for i in range(shards):
        tensors = {f"layers.{i}.weight": rng.standard_normal((rows, cols), dtype=np.float32)}
        path = folder / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file(tensors, str(path))
        paths.append(path)
    (folder / "config.json").write_text(json.dumps({"architecture": "bench", "shards": shards}))
    return paths


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def service_seconds(stdout: str) -> float:
    """The push's own timer ("... in 1.23s"): the work without the interpreter's start-up."""
    found = re.search(r"in\s+([0-9.]+)s\s*$", stdout.strip())  # Rich may wrap the line
    if found is None:
        raise SystemExit(f"airlock push printed no timing:\n{stdout}")
    return float(found.group(1))


def store_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "blobs" / "sha256").rglob("*") if p.is_file())


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench ingest", description=__doc__)
    ap.add_argument("--gib", type=float, default=2.0, help="model size in GiB (default 2)")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--dir", type=Path, default=None, help="where to build (default: a temp dir)")
    ap.add_argument("--remote", action="store_true", help="push through `airlock serve` instead")
    args = ap.parse_args(argv)
    if args.remote:
        return remote(args)

    root = Path(tempfile.mkdtemp(prefix="airlock-bench-ingest-", dir=args.dir))
    try:
        model = root / "model"
        model.mkdir()
        total = int(args.gib * (1 << 30))
        print(f"building a {args.gib:g} GiB model of {args.shards} shards in {model} ...")
        shards = build_model(model, total, args.shards)
        for p in shards:  # warm the page cache once, for every contender alike
            with p.open("rb") as f:
                while f.read(16 << 20):
                    pass
        time.sleep(2.1)  # files older than the hash cache's racy window, as on a real disk

        env = {**os.environ, "AIRLOCK_NO_PROGRESS": "1", "AIRLOCK_USER": "bench"}
        ref_wall, _ = timed(["sha256sum", *map(str, shards)], env)

        home = root / "ws" / ".airlock"
        env2 = {**env, "AIRLOCK_HOME": str(home)}
        timed([AIRLOCK, "init"], env2)
        push_wall, push_out = timed(
            [AIRLOCK, "push", str(model), "--name", "bench", "--version", "1.0.0"], env2
        )
        stored_first = store_bytes(home)
        verify_wall, _ = timed([AIRLOCK, "verify"], env2)

        # Change one shard (a fine-tune touched one layer) and push the next version.
        victim = shards[len(shards) // 2]
        with victim.open("r+b") as f:
            f.seek(-4096, os.SEEK_END)
            f.write(np.random.default_rng(1).bytes(4096))
        repush_wall, repush_out = timed(
            [AIRLOCK, "push", str(model), "--name", "bench", "--version", "1.0.1"], env2
        )
        stored_second = store_bytes(home) - stored_first
        # The same first push with one hashing thread: is hashing in parallel faster?
        home1 = root / "ws-serial" / ".airlock"
        env1 = {**env, "AIRLOCK_HOME": str(home1), "AIRLOCK_WORKERS": "1"}
        timed([AIRLOCK, "init"], env1)
        serial_wall, _ = timed(
            [AIRLOCK, "push", str(model), "--name", "bench", "--version", "1.0.0"], env1
        )

        size = sum(p.stat().st_size for p in shards)
        startup_wall, _ = timed([AIRLOCK, "ls"], env2)
        push_work, repush_work = service_seconds(push_out), service_seconds(repush_out)

        def rel(x: float) -> str:
            return f"{x / ref_wall:.2f}×"

        rows = [
            ["sha256sum (reference)", f"{ref_wall:.2f}", "1.00×", f"{size / ref_wall / 2**20:.0f}", "—", "—"],
            ["airlock push, 1 worker", f"{serial_wall:.2f}", rel(serial_wall), f"{size / serial_wall / 2**20:.0f}", "—", "—"],
            ["airlock push", f"{push_wall:.2f}", rel(push_wall), f"{size / push_wall / 2**20:.0f}", f"{stored_first / 2**20:.0f}", "≤ 0.60×"],
            ["airlock verify", f"{verify_wall:.2f}", rel(verify_wall), f"{stored_first / verify_wall / 2**20:.0f}", "—", "≤ 0.60×"],
            ["airlock push, 1 shard changed", f"{repush_wall:.2f}", f"{repush_wall / push_wall:.2f}× push", "—", f"{stored_second / 2**20:.0f}", "≤ 0.20× push"],
            ["  the same, push's own timer", f"{repush_work:.2f}", f"{repush_work / push_work:.2f}× push", "—", "—", "(first push: " + f"{push_work:.2f} s)"],
            ["airlock ls (start-up, catalog open)", f"{startup_wall:.2f}", "—", "—", "—", "—"],
        ]  # fmt: skip
        report(
            "ingest",
            ["step", "wall s", "vs sha256sum", "MiB/s", "new MiB stored", "target"],
            rows,
            {
                "model_bytes": size,
                "shards": len(shards),
                "shard_bytes": victim.stat().st_size,
                "cores": os.cpu_count(),
                "push_ratio": push_wall / ref_wall,
                "verify_ratio": verify_wall / ref_wall,
                "repush_ratio": repush_wall / push_wall,
                "repush_work_ratio": repush_work / push_work,
                "startup_seconds": startup_wall,
                "repush_new_bytes": stored_second,
            },
        )
        ok = (
            push_wall <= 0.6 * ref_wall
            and verify_wall <= 0.6 * ref_wall
            and repush_wall <= 0.2 * push_wall
            and stored_second <= victim.stat().st_size + (1 << 20)
        )
        print("targets met" if ok else "targets NOT met")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("airlock serve exited before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("airlock serve did not start")


_SENT = re.compile(r"([0-9.]+ (?:B|KiB|MiB|GiB|TiB)) new")


def remote(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="airlock-bench-remote-", dir=args.dir))
    server: subprocess.Popen[bytes] | None = None
    try:
        model = root / "model"
        model.mkdir()
        total = int(args.gib * (1 << 30))
        print(f"building a {args.gib:g} GiB model of {args.shards} shards in {model} ...")
        shards = build_model(model, total, args.shards)
        for p in shards:
            with p.open("rb") as f:
                while f.read(16 << 20):
                    pass
        time.sleep(2.1)
        env = {**os.environ, "AIRLOCK_NO_PROGRESS": "1", "AIRLOCK_USER": "bench"}
        ref_wall, _ = timed(["sha256sum", *map(str, shards)], env)

        home = root / "server" / ".airlock"
        server_env = {**env, "AIRLOCK_HOME": str(home)}
        timed([AIRLOCK, "init"], server_env)
        token = (home / "token").read_text().strip()
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [AIRLOCK, "serve", "--port", str(port)],
            env=server_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_ready(url, server)
        laptop = {  # a second folder: no workspace, database or store settings at all
            **env,
            "AIRLOCK_HOME": str(root / "laptop" / ".airlock"),
            "AIRLOCK_URL": url,
            "AIRLOCK_TOKEN": token,
            "XDG_CACHE_HOME": str(root / "laptop" / "cache"),
        }
        for key in ("AIRLOCK_DATABASE_URL", "AIRLOCK_STORE_URL"):
            laptop.pop(key, None)

        def push(version: str) -> tuple[float, str, str, int]:
            before = store_bytes(home)
            wall, out = timed(
                [AIRLOCK, "push", str(model), "--name", "bench", "--version", version], laptop
            )
            found = _SENT.search(out)
            return wall, out, found.group(1) if found else "?", store_bytes(home) - before

        push_wall, _, push_sent, push_stored = push("1.0.0")
        again_wall, _, _, again_stored = push("1.0.0")
        victim = shards[len(shards) // 2]
        with victim.open("r+b") as f:
            f.seek(-4096, os.SEEK_END)
            f.write(np.random.default_rng(1).bytes(4096))
        repush_wall, _, repush_sent, repush_stored = push("1.0.1")
        pull_wall, _ = timed([AIRLOCK, "pull", "bench@1.0.1", str(root / "pulled")], laptop)
        startup_wall, _ = timed([AIRLOCK, "ls"], laptop)  # a remote command's floor
        size = sum(p.stat().st_size for p in shards)

        def mib(n: int) -> str:
            return f"{n / 2**20:.0f}"

        rows = [
            ["sha256sum (reference)", f"{ref_wall:.2f}", "1.00×", f"{size / ref_wall / 2**20:.0f}", "—", "—"],
            ["remote push (hash + upload + server verify)", f"{push_wall:.2f}", f"{push_wall / ref_wall:.2f}×", f"{size / push_wall / 2**20:.0f}", push_sent, mib(push_stored)],
            ["remote push again (nothing missing)", f"{again_wall:.2f}", f"{again_wall / ref_wall:.2f}×", "—", "0 B", mib(again_stored)],
            ["remote push, 1 shard changed", f"{repush_wall:.2f}", f"{repush_wall / push_wall:.2f}× push", "—", repush_sent, mib(repush_stored)],
            ["remote airlock ls (start-up + one call)", f"{startup_wall:.2f}", "—", "—", "—", "—"],
            ["remote pull (stream + verify)", f"{pull_wall:.2f}", f"{pull_wall / ref_wall:.2f}×", f"{size / pull_wall / 2**20:.0f}", "—", "—"],
        ]  # fmt: skip
        report(
            "ingest-remote",
            ["step", "wall s", "vs sha256sum", "MiB/s", "sent (CLI)", "new MiB on server"],
            rows,
            {
                "model_bytes": size,
                "shards": len(shards),
                "shard_bytes": victim.stat().st_size,
                "cores": os.cpu_count(),
                "push_ratio": push_wall / ref_wall,
                "repush_ratio": repush_wall / push_wall,
                "repush_stored_bytes": repush_stored,
                "again_stored_bytes": again_stored,
                "startup_seconds": startup_wall,
            },
        )
        ok = repush_stored <= victim.stat().st_size + (1 << 20) and again_stored == 0
        print("only the changed shard travelled" if ok else "MORE than the changed shard travelled")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

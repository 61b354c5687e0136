"""Shared output for benchmarks: a Rich table on stdout and JSON under bench/results/."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def report(name: str, columns: list[str], rows: list[list[Any]], extra: dict[str, Any]) -> None:
    table = Table(title=f"bench {name}")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    Console(width=140).print(table)
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "bench": name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "columns": columns,
        "rows": rows,
        **extra,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))

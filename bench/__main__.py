"""Run benchmarks by name: ``python -m bench ingest`` or ``python -m bench all``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _names() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = _names()
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: python -m bench NAME|all [ARGS...]\nbenchmarks: " + ", ".join(names))
        return 0
    wanted = names if argv[0] == "all" else [argv[0]]
    status = 0
    for name in wanted:
        if name not in names:
            print(f"no benchmark named {name!r}; choose from: {', '.join(names)}")
            return 2
        module = importlib.import_module(f"bench.{name}")
        print(f"\n== bench {name}")
        status |= int(module.main(argv[1:] if argv[0] != "all" else []))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The CLI starts fast: building the command tree imports no heavy library.

Heavy imports (SQLAlchemy, numpy, scipy, FastAPI, uvicorn, httpx, safetensors)
belong inside the command that needs them; `airlock --help` and the parsing of
every command's options must not pay for them.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "numpy", "scipy", "fastapi", "uvicorn", "httpx", "safetensors", "alembic")


def test_building_the_cli_imports_no_heavy_library() -> None:
    code = (
        "import sys, json, typer\n"
        "from airlock.cli.main import app\n"
        "typer.main.get_command(app)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []

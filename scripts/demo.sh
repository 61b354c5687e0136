#!/usr/bin/env bash
# The demo is a command now: `airlock demo` (what `make demo` runs). This wrapper stays for
# muscle memory; arguments pass through (e.g. --no-serve, --fast, --dir PATH, --port N).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
exec "$here/.venv/bin/airlock" demo "$@"

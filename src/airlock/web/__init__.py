"""The dashboard: server-rendered pages, a stylesheet and a little JavaScript (no build step)."""

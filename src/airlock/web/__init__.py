"""The dashboard: server-rendered pages, a stylesheet and a little JavaScript (no build step).

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

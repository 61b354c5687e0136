"""The command line (Typer commands over the services).

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

"""The REST API (FastAPI routes over the services).

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

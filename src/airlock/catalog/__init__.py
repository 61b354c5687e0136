"""The SQL catalog: tables, queries and migrations; only the services use it.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

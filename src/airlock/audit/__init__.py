"""The tamper-evident audit log: a hash chain of events in the catalog.

Internal: except the modules ``airlock`` exports from (see ``airlock.__all__``).
"""

from airlock.audit.chain import ChainProblem, ChainReport, Checkpoint, verify_chain
from airlock.audit.log import Event, append, entries, verify

__all__ = [
    "ChainProblem",
    "ChainReport",
    "Checkpoint",
    "Event",
    "append",
    "entries",
    "verify",
    "verify_chain",
]

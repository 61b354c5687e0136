"""Model back ends behind one protocol (:class:`Runtime`), and the loader that verifies a
release and picks its back end: ``builtin`` (Airlock's n-gram model), ``upstream`` (any
OpenAI-compatible server) and ``transformers`` (``airlock[hf]``).

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from airlock.runtime.base import (
    Completion,
    Delta,
    GenerationRequest,
    Runtime,
    RuntimeFailure,
    RuntimeTimeout,
)
from airlock.runtime.faults import FaultSpec, FaultyRuntime
from airlock.runtime.loader import LoadedRelease, ReleaseLoader

__all__ = [
    "Completion",
    "Delta",
    "FaultSpec",
    "FaultyRuntime",
    "GenerationRequest",
    "LoadedRelease",
    "ReleaseLoader",
    "Runtime",
    "RuntimeFailure",
    "RuntimeTimeout",
]

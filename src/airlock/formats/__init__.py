"""Reading model-file headers without loading weights: safetensors, GGUF, pickle.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from airlock.formats.inspect import inspect_file, media_type_for

__all__ = ["inspect_file", "media_type_for"]

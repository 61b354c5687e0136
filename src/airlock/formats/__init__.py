"""Reading model-file headers without loading weights: safetensors, GGUF, pickle."""

from airlock.formats.inspect import inspect_file, media_type_for

__all__ = ["inspect_file", "media_type_for"]

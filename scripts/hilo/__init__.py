"""Python client of hilod (docs/protocol.md): requests, numpy arrays in binary parts, events."""
from .client import Client, HiloError, load_run

__all__ = ["Client", "HiloError", "load_run"]

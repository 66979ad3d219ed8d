"""Python client of hilod (docs/protocol.md): requests, numpy arrays in binary parts, events, run documents,
and readers of stored runs (.npy run directories and NeXus-style HDF5 files)."""
from .client import FINAL_STATES, PROTOCOL_VERSION, RUN_DOCUMENTS, Client, HiloError
from .runs import load_run, load_run_h5

__all__ = ["Client", "HiloError", "load_run", "load_run_h5", "FINAL_STATES", "PROTOCOL_VERSION", "RUN_DOCUMENTS"]
__version__ = "0.1.0"

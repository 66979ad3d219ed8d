"""Reading stored runs straight from disk, without a daemon (docs/storage.md).

A run directory holds ``manifest.json`` and one ``.npy`` file per array (``frames``, ``inputs``,
``indices``, ``labels``), or, while the run is being written, one ``.npy`` file per array and chunk.
A run may also be stored as one NeXus-style HDF5 file (``run.h5``), read by :func:`load_run_h5`.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Tuple

import numpy as np

Manifest = Dict[str, Any]
Arrays = Dict[str, np.ndarray]


def load_run(run_dir: str | os.PathLike[str]) -> Tuple[Manifest, Arrays]:
    """Reads a run directory: ``(manifest, {name: array})``.

    Uses the consolidated arrays when the run has ended, else concatenates the chunks its manifest
    lists (every listed chunk is complete, even after a crash). The first axis of each array is the
    record. Raises FileNotFoundError when the directory has no manifest or a listed file is missing.
    """
    with open(os.path.join(run_dir, "manifest.json")) as f:
        manifest: Manifest = json.load(f)
    arrays: Arrays = {
        name: np.load(os.path.join(run_dir, a["file"])) for name, a in manifest.get("arrays", {}).items()
    }
    chunks = manifest.get("chunks", [])
    if chunks:
        for name in chunks[0]["files"]:
            arrays[name] = np.concatenate([np.load(os.path.join(run_dir, c["files"][name])) for c in chunks])
    return manifest, arrays


def _h5py() -> Any:
    try:
        import h5py  # noqa: PLC0415 (optional dependency, imported on first use)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_run_h5 needs h5py: install the Debian package python3-h5py, or the client with the "
            "'hdf5' extra (pip install 'scripts/python[hdf5]')"
        ) from e
    return h5py


def _attr(v: Any) -> Any:
    """An HDF5 attribute as a plain Python value (bytes → str, numpy scalars → Python scalars)."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def load_run_h5(path: str | os.PathLike[str]) -> Tuple[Manifest, Arrays]:
    """Reads a run stored as HDF5 (``run.h5``, NeXus layout of docs/storage.md): ``(manifest, {name: array})``.

    ``path`` is the file or the run directory holding ``run.h5``. The arrays are every dataset under
    ``/entry/data``; the manifest is the JSON of ``/entry``'s ``manifest`` attribute, or, if absent,
    ``/entry``'s attributes. Opens the file in SWMR read mode when the file allows it, so a run that is
    still being written can be read. Raises ImportError when h5py is not installed, KeyError when the
    file has no ``/entry/data`` group.
    """
    h5py = _h5py()
    p = os.fspath(path)
    if os.path.isdir(p):
        p = os.path.join(p, "run.h5")
    try:
        f = h5py.File(p, "r", swmr=True)
    except (OSError, ValueError):
        f = h5py.File(p, "r")
    with f:
        entry = f["entry"]
        attrs = {k: _attr(v) for k, v in entry.attrs.items()}
        manifest: Manifest = json.loads(attrs["manifest"]) if isinstance(attrs.get("manifest"), str) else attrs
        data = entry["data"]
        arrays: Arrays = {name: np.asarray(ds[()]) for name, ds in data.items() if isinstance(ds, h5py.Dataset)}
    return manifest, arrays

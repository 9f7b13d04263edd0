"""Checkpoint files as bytes, to carry them through Ray's object store from node to node."""

from __future__ import annotations

import os
from typing import Dict


def read_tree(path: str) -> Dict[str, bytes]:
    """A file or a folder as {relative path: bytes}; a single file is the key ""."""
    if not os.path.isdir(path):
        with open(path, "rb") as handle:
            return {"": handle.read()}
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as handle:
                files[os.path.relpath(full, path)] = handle.read()
    return files


def write_tree(path: str, files: Dict[str, bytes]) -> None:
    """Write what :func:`read_tree` read, at ``path`` (a folder, or a file for the key "")."""
    for relative, data in files.items():
        target = os.path.join(path, relative) if relative else path
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(data)

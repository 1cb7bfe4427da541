"""Unix socket paths that fit the kernel's limit (108 bytes, with a margin)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

MAX_SOCKET_PATH = 100


def fitting_socket_path(preferred: Path, label: str) -> Path:
    """``preferred`` if it fits; else a short, stable path in a private folder under the
    system's temp directory, derived from ``preferred`` (so every process that computes
    it from the same config finds the same socket)."""
    if len(str(preferred)) <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"remotecomm-{label}-{digest}" / preferred.name


def prepare_socket_folder(path: Path) -> None:
    """Create the socket's folder readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)


def remove_private_socket_folder(path: Path) -> None:
    """Remove the private folder :func:`fitting_socket_path` made for ``path``'s socket, if
    it made one (a socket at its preferred place is left to its owner)."""
    folder = path.parent
    if folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith("remotecomm-"):
        shutil.rmtree(folder, ignore_errors=True)

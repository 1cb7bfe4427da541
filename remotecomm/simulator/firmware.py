"""Firmware images on the simulated MFP: uploaded through its web page, or installed by a
maintenance job.

Uploads (``POST /firmware``, a browser's form, or ``PUT /firmware``, a
script's raw body) stream to disk through the shared helper
(:mod:`remotecomm.http_files`): hashed as they arrive, capped, refused
from ``Content-Length`` before anything is read; nothing holds the image in
memory.  Progress is visible while the upload runs (``GET
/firmware/progress``), which is how a test sees the first chunk arrive before
the client sent its last.
"""

from __future__ import annotations

from pathlib import Path

from remotecomm.http_files import StreamedUpload, UploadRequest

MAX_FIRMWARE = 256 * 1024 * 1024
MAX_FORM_BODY = 64 * 1024
UPLOAD_PATH = b"/firmware"
IMAGE_NAME = "firmware.bin"


class SimulatorRequest(UploadRequest):
    """A request of the simulator's apps: firmware bodies stream, other bodies are capped."""

    max_body = MAX_FORM_BODY


def firmware_uploads(folder: Path):
    """The web server's upload chooser: ``POST``/``PUT /firmware`` stream into ``folder``."""
    def upload_for(method: bytes, path: bytes, headers, length: int | None, running: int):
        if method not in (b"POST", b"PUT") or path != UPLOAD_PATH:
            return None
        content_type = headers.getRawHeaders(b"content-type", [None])[0]
        return StreamedUpload(folder, MAX_FIRMWARE, content_type, length, form_field=b"firmware")

    return upload_for

"""Firmware uploads to the simulated MFP, streamed to disk as they arrive.

twisted.web hands a resource the request only after the whole body came in,
and it parses multipart forms in memory.  :class:`SimulatorRequest`
therefore sends the body of ``POST``/``PUT /firmware`` straight into a
:class:`FirmwareUpload` as each chunk arrives: it hashes the bytes and
writes them to a partial file (for a browser's multipart form, only the
``firmware`` file part); nothing holds the image in memory.  Progress is
visible while the upload runs (``GET /firmware/progress``), which is how a
test sees the first chunk arrive before the client sent its last.  An upload
the client breaks off leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header
from twisted.web import server

MAX_FIRMWARE = 256 * 1024 * 1024
MAX_FORM_BODY = 64 * 1024
MAX_PART_HEAD = 16 * 1024
UPLOAD_PATH = b"/firmware"


class UploadError(ValueError):
    """The upload cannot be accepted; the message says why."""


class MultipartFile:
    """Extracts one named file part of a ``multipart/form-data`` body as it arrives.

    The parsing is the ``multipart`` package's push parser (with bounds
    on part heads and counts); only the bytes of the first part named
    ``field_name`` that carries a file name go to ``write``.
    """

    def __init__(self, boundary: bytes, field_name: bytes, write):
        try:
            self._parser = PushMultipartParser(boundary, max_header_size=MAX_PART_HEAD,
                                               max_header_count=16, max_segment_count=64,
                                               strict=False)
        except MultipartError as e:
            raise UploadError(f"unusable multipart boundary: {e}") from None
        self._field = field_name.decode("ascii")
        self._write = write
        self._in_file = False
        self._closed_cleanly: bool | None = None
        self.found = False

    @property
    def complete(self) -> bool:
        """The body ended with its closing delimiter and held the file part."""
        if self._closed_cleanly is None:
            try:
                self._parser.close()
                self._closed_cleanly = True
            except MultipartError:
                self._closed_cleanly = False
        return self._closed_cleanly and self.found

    def feed(self, data: bytes) -> None:
        if not data or self._closed_cleanly is not None:
            return
        try:
            for event in self._parser.parse(data):
                if isinstance(event, MultipartSegment):
                    self._in_file = (event.name == self._field and event.filename is not None
                                     and not self.found)
                    self.found = self.found or self._in_file
                elif event is None:
                    self._in_file = False
                elif self._in_file:
                    self._write(bytes(event))
        except MultipartError as e:
            raise UploadError(f"malformed multipart body: {e}") from None


class FirmwareUpload:
    """One upload in progress: hashed and written to a partial file as it arrives."""

    def __init__(self, folder: Path, content_type: bytes | None, declared: int | None):
        if declared is not None and declared > MAX_FIRMWARE + MAX_PART_HEAD:
            raise UploadError(f"the image is larger than {MAX_FIRMWARE // 2**20} MiB")
        self.folder = folder
        self.received = 0
        self.size = 0
        self._hash = hashlib.sha256()
        self.partial = folder / f"firmware.part-{secrets.token_hex(6)}"
        folder.mkdir(parents=True, exist_ok=True)
        self._file = open(self.partial, "wb")  # noqa: SIM115 -- closed in finish()/abort()
        self._multipart = None
        self.error: str | None = None
        kind, options = parse_options_header((content_type or b"").decode("latin-1"))
        if kind.lower() == "multipart/form-data":
            boundary = options.get("boundary", "")
            if not boundary:
                self.error = "multipart body without a boundary"
            else:
                try:
                    self._multipart = MultipartFile(boundary.encode("latin-1"), b"firmware",
                                                    self._store)
                except UploadError as e:
                    self.error = str(e)

    # The request writes the body here (as it would to a temporary file).
    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.error is not None:
            return
        try:
            if self._multipart is not None:
                self._multipart.feed(data)
            else:
                self._store(data)
        except UploadError as e:
            self.error = str(e)

    @property
    def too_large(self) -> bool:
        """Whether the image went over the cap (the upload can stop here)."""
        return self.size > MAX_FIRMWARE

    def _store(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_FIRMWARE:
            raise UploadError(f"the image is larger than {MAX_FIRMWARE // 2**20} MiB")
        self._hash.update(data)
        self._file.write(data)

    def tell(self) -> int:
        return 0

    def seek(self, *args) -> None:
        pass

    def read(self, *args) -> bytes:
        return b""

    def close(self) -> None:
        pass

    def finish(self) -> tuple[int, str]:
        """The body is complete: install the image; its size and SHA-256."""
        self._file.close()
        if self.error is None and self._multipart is not None and not self._multipart.complete:
            self.error = "the form has no complete 'firmware' file"
        if self.error is None and self.size == 0:
            self.error = "the image is empty"
        if self.error is not None:
            self.partial.unlink(missing_ok=True)
            raise UploadError(self.error)
        os.replace(self.partial, self.folder / "firmware.bin")
        return self.size, self._hash.hexdigest()

    def abort(self) -> None:
        """The client broke off: leave nothing behind."""
        if not self._file.closed:
            self._file.close()
        self.partial.unlink(missing_ok=True)


class SimulatorRequest(server.Request):
    """A request of the simulator's apps: firmware bodies stream, other bodies are capped."""

    upload: FirmwareUpload | None = None
    body_too_large = False
    upload_error: str | None = None
    _refused = False

    def _refuse_now(self, message: str) -> None:
        """Answer 413 at once and close: the rest of an oversized body is never read."""
        self._refused = True
        body = json.dumps({"error": message}).encode("utf-8") + b"\n"
        transport = self.channel.transport
        transport.write(b"HTTP/1.1 413 Payload Too Large\r\n"
                        b"Content-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        transport.loseConnection()

    def gotLength(self, length: int | None) -> None:
        # The request line is parsed before the body; twisted.web keeps it on the channel.
        command = getattr(self.channel, "_command", b"")
        path = getattr(self.channel, "_path", b"").split(b"?")[0]
        site = self.channel.site
        if command in (b"POST", b"PUT") and path == UPLOAD_PATH and getattr(
                site, "firmware_folder", None) is not None:
            self._parsePOSTFormSubmission = False
            try:
                self.upload = FirmwareUpload(site.firmware_folder,
                                             self.requestHeaders.getRawHeaders(
                                                 b"content-type", [None])[0], length)
            except UploadError as e:
                self.upload_error = str(e)
                super().gotLength(0)
                self._refuse_now(str(e))  # from Content-Length alone: the body is not read
                return
            site.uploads.add(self.upload)
            self.content = self.upload
            return
        if length is not None and length > MAX_FORM_BODY:
            self.body_too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.upload is not None:
            self.upload.write(data)
            if self.upload.too_large and not self._refused:
                self._refuse_now(self.upload.error)  # chunked: stop reading at the cap
        elif self.upload_error is not None or self.body_too_large:
            return
        elif self.content.tell() + len(data) > MAX_FORM_BODY:
            self.body_too_large = True
            self.content.seek(0)
            self.content.truncate()
        else:
            super().handleContentChunk(data)

    def connectionLost(self, reason) -> None:
        if self.upload is not None:
            self.upload.abort()
            self.channel.site.uploads.discard(self.upload)
        super().connectionLost(reason)

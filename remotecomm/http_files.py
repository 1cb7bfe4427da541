"""Files over twisted.web: streamed, hashed, size-capped uploads, and ranged downloads.

Uploads -- one helper for every upload.

twisted.web hands a resource the request only after the whole body came in
(into memory or a temporary file), and it parses multipart forms in memory.
A site that takes large files sets :class:`UploadRequest` as its request
factory and an ``upload_for(method, path, headers, length, running)`` chooser:

* for a method and path that take an upload (and the number of uploads
  running on the site), the chooser returns a
  :class:`StreamedUpload` -- or raises :class:`UploadError` to refuse at
  once from the headers alone (a ``Content-Length`` over the cap, no
  credentials, too many uploads running): the answer goes out and the
  connection closes without reading the body;
* the body then streams into the upload as each chunk arrives: hashed
  (SHA-256) and written to a partial file; a ``multipart/form-data`` body
  keeps only its named file part; a chunked body that passes the cap is cut
  off there with a ``413``;
* the resource finds it as ``request.upload`` and calls
  :meth:`StreamedUpload.finish` to move the complete file where it belongs.
  Whatever happens -- an error answer, a client that breaks off -- no
  partial file is left behind.

Other requests keep the small-body cap of
:class:`~remotecomm.json_http.BoundedRequest`.  The manager's firmware upload
and the simulated MFP's firmware page both use this.

Downloads -- :func:`serve_file` streams a file (or the one byte range a
``Range`` header asks for, so that a broken download resumes) with a
producer, and says when its last byte went out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Callable

from twisted.logger import Logger
from twisted.web import server, static

from remotecomm.json_http import ApiError, BoundedRequest

log = Logger()

MAX_PART_HEAD = 16 * 1024


class UploadError(ValueError):
    """An upload that cannot be accepted: HTTP ``status``, stable ``code``, message."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid-upload"):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def too_large(max_size: int) -> UploadError:
    """The refusal of a body over ``max_size`` bytes."""
    return UploadError(f"the file is larger than {_size_text(max_size)}", 413, "too-large")


def _size_text(size: int) -> str:
    return f"{size // 2**20} MiB" if size >= 2**20 else f"{size} bytes"


class MultipartFile:
    """Extracts one named file part of a ``multipart/form-data`` body as it arrives.

    The parsing is the ``multipart`` package's push parser (with bounds on
    part heads and counts), imported only where a form is uploaded; only the
    bytes of the first part named ``field_name`` that carries a file name go
    to ``write``.
    """

    def __init__(self, boundary: bytes, field_name: bytes, write):
        from multipart import MultipartError, PushMultipartParser
        self._error_type = MultipartError
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
            except self._error_type:
                self._closed_cleanly = False
        return self._closed_cleanly and self.found

    def feed(self, data: bytes) -> None:
        """The next bytes of the body."""
        from multipart import MultipartSegment
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
        except self._error_type as e:
            raise UploadError(f"malformed multipart body: {e}") from None


def form_boundary(content_type: bytes | None) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type (``None``: not a form);
    :class:`UploadError` for a form without one."""
    kind, _, rest = (content_type or b"").decode("latin-1").partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for option in rest.split(";"):
        name, _, value = option.strip().partition("=")
        if name.strip().lower() == "boundary" and value.strip().strip('"'):
            return value.strip().strip('"').encode("latin-1")
    raise UploadError("multipart body without a boundary")


class StreamedUpload:
    """One body in progress: hashed and written to a partial file in ``folder`` as it
    arrives, at most ``max_size`` bytes of file.

    ``declared`` is the body's ``Content-Length``: one over the cap is refused
    before anything is read.  With ``form_field``, a ``multipart/form-data``
    body (``content_type``) keeps only that file part.
    """

    def __init__(self, folder: Path, max_size: int, content_type: bytes | None = None,
                 declared: int | None = None, form_field: bytes | None = None):
        boundary = form_boundary(content_type) if form_field is not None else None
        slack = MAX_PART_HEAD if boundary is not None else 0
        if declared is not None and declared > max_size + slack:
            raise too_large(max_size)
        self.max_size = max_size
        self.received = 0   # bytes of body
        self.size = 0       # bytes of file
        self.error: UploadError | None = None
        self._hash = hashlib.sha256()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.partial = folder / f"upload.part-{secrets.token_hex(8)}"
        self._file = open(self.partial, "wb")  # noqa: SIM115 -- closed in finish()/abort()
        self._form = (MultipartFile(boundary, form_field, self._store)
                      if boundary is not None else None)

    def write(self, data: bytes) -> None:
        """The next chunk of the body (the request writes it here)."""
        self.received += len(data)
        if self.error is not None:
            return
        try:
            if self._form is not None:
                self._form.feed(data)
            else:
                self._store(data)
        except UploadError as e:
            self.error = e

    @property
    def too_large(self) -> bool:
        """Whether the file went over the cap (the body need not be read further)."""
        return self.size > self.max_size

    def _store(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_size:
            raise too_large(self.max_size)
        self._hash.update(data)
        self._file.write(data)

    def finish(self, destination: Path) -> tuple[int, str]:
        """The body is complete: move the file to ``destination``; its size and SHA-256
        (hex).  :class:`UploadError` (and nothing kept) for an unusable upload."""
        self._file.close()
        if self.error is None and self._form is not None and not self._form.complete:
            self.error = UploadError("the form has no complete file part")
        if self.error is None and self.size == 0:
            self.error = UploadError("the file is empty")
        if self.error is not None:
            self.partial.unlink(missing_ok=True)
            raise self.error
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(self.partial, destination)
        return self.size, self._hash.hexdigest()

    def abort(self) -> None:
        """Drop whatever arrived (idempotent; nothing after :meth:`finish`)."""
        if not self._file.closed:
            self._file.close()
        self.partial.unlink(missing_ok=True)

    # twisted.web treats the request's ``content`` as a file; the body went to ours.
    def tell(self) -> int:
        return 0

    def seek(self, *args) -> None:
        pass

    def read(self, *args) -> bytes:
        return b""

    def close(self) -> None:
        pass


class UploadRequest(BoundedRequest):
    """A request whose body streams into the upload its site chooses; other bodies are
    capped at ``max_body``.  Sites without a chooser behave as :class:`BoundedRequest`."""

    upload: StreamedUpload | None = None
    _refused = False

    def _refuse_now(self, error: UploadError) -> None:
        """Answer at once and close: the rest of the body is never read."""
        self._refused = True
        body = json.dumps({"code": error.code, "message": error.message}).encode("utf-8")
        reason = {413: b"Payload Too Large", 401: b"Unauthorized",
                  503: b"Service Unavailable"}.get(error.status, b"Bad Request")
        transport = self.channel.transport
        transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s\n"
                        % (error.status, reason, len(body) + 1, body))
        transport.loseConnection()

    def gotLength(self, length: int | None) -> None:
        chooser = getattr(self.channel.site, "upload_for", None)
        if chooser is not None:
            # The request line is parsed before the body; twisted.web keeps it on the channel.
            method = getattr(self.channel, "_command", b"")
            path = getattr(self.channel, "_path", b"").split(b"?")[0]
            try:
                upload = chooser(method, path, self.requestHeaders, length,
                                 len(_site_uploads(self)))
            except UploadError as e:
                super().gotLength(0)
                self._refuse_now(e)
                return
            if upload is not None:
                self._parsePOSTFormSubmission = False
                self.upload = upload
                self.content = upload
                self._running = _site_uploads(self)
                self._running.add(upload)
                return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        if self.upload is None:
            super().handleContentChunk(data)
            return
        self.upload.write(data)
        if self.upload.too_large:
            self._refuse_now(too_large(self.upload.max_size))  # chunked: stop at the cap

    def process(self) -> None:
        if not self._refused:  # a refused request was answered already
            super().process()

    def _done_with_upload(self) -> None:
        if self.upload is not None:
            self.upload.abort()
            self._running.discard(self.upload)

    def finish(self) -> None:
        self._done_with_upload()
        super().finish()

    def connectionLost(self, reason) -> None:
        self._done_with_upload()
        super().connectionLost(reason)


def _site_uploads(request) -> set:
    """The uploads running on the request's site (a chooser may bound them)."""
    site = request.channel.site
    if not hasattr(site, "uploads"):
        site.uploads = set()
    return site.uploads


_RANGE = re.compile(r"bytes=(\d{0,15})-(\d{0,15})")


def requested_range(header: bytes | None, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last) a ``Range`` header asks of ``size`` bytes;
    ``None`` for the whole file (no header, several ranges or one we do not read, as RFC
    9110 allows); ``416 range-not-satisfiable`` for a range past the end."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.decode("latin-1").strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
    if start >= size or size == 0:
        raise ApiError(416, "range-not-satisfiable", f"the file has {size} bytes",
                       headers={"Content-Range": f"bytes */{size}"})
    return start, end


def serve_file(request: server.Request, path: Path, size: int,
               on_complete: Callable[[], object] | None = None,
               media_type: bytes = b"application/octet-stream") -> None:
    """Answer ``request`` with the file at ``path`` (``size`` bytes), whole or the byte
    range it asks for, streamed under the transport's backpressure; ``on_complete()`` once
    the answer holding the file's last byte was written out whole.  A file that is gone is
    ``404 not-found``."""
    wanted = requested_range(request.getHeader(b"range"), size)
    start, end = wanted or (0, size - 1)
    try:
        file = open(path, "rb")  # noqa: SIM115 -- the producer closes it
    except FileNotFoundError:
        raise ApiError(404, "not-found", "the file is gone") from None
    request.setResponseCode(206 if wanted else 200)
    if wanted:
        request.setHeader(b"content-range", b"bytes %d-%d/%d" % (start, end, size))
    request.setHeader(b"server", b"remotecomm")
    request.setHeader(b"content-type", media_type)
    request.setHeader(b"content-length", b"%d" % (end - start + 1))
    request.setHeader(b"accept-ranges", b"bytes")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-content-type-options", b"nosniff")
    if request.method == b"HEAD":
        file.close()
        request.finish()
        return
    if on_complete is not None and end == size - 1:
        request.notifyFinish().addCallbacks(lambda _: on_complete(), lambda _: None)
    static.SingleRangeStaticProducer(request, file, start, end - start + 1).start()

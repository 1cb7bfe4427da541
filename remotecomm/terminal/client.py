"""The terminal's HTTPS client for the manager's REST API (treq)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import treq
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, TimeoutError
from twisted.web.client import (Agent, FileBodyProducer, RequestTransmissionFailed, ResponseFailed,
                                ResponseNeverReceived)

from remotecomm.command_line import EXIT_NOT_LOGGED_IN, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from remotecomm.messages import text
from remotecomm.tls import TLSSetupError, https_policy

MAX_ANSWER_BYTES = 1024 * 1024
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
_NOT_LOGGED_IN_CODES = {"unauthenticated", "invalid-token", "token-expired", "terminal-mismatch",
                        "missing-terminal-id"}


class ApiClient:
    """Calls the manager's API and turns every failure into a :class:`CliError`."""

    def __init__(self, reactor, base_url: str, ca_path: Path | None, terminal_id: str,
                 token: str | None = None, timeout: float = 15.0, user_id: str | None = None,
                 unit_id: str | None = None):
        try:
            policy = https_policy(ca_path)
        except TLSSetupError as e:
            raise CliError(str(e)) from None
        self._http = treq.client.HTTPClient(Agent(reactor, contextFactory=policy))
        self.ca_certificate = ca_path
        self._base_url = base_url
        self._terminal_id = terminal_id
        self.terminal_id = terminal_id
        self.user_id = user_id  # who is logged in here (for queries about one's own)
        self._token = token
        self._timeout = timeout
        self.unit_id = unit_id  # the unit calls act in (None: the user's only unit)

    def _headers(self) -> dict[bytes, list[bytes]]:
        headers = {b"accept": [b"application/json"],
                   b"x-remotecomm-terminal": [self._terminal_id.encode("ascii")]}
        if self._token is not None:
            headers[b"authorization"] = [b"Bearer " + self._token.encode("ascii")]
        if self.unit_id is not None:
            headers[b"x-remotecomm-unit"] = [self.unit_id.encode("ascii")]
        return headers

    async def get(self, path: str) -> dict[str, Any]:
        """GET ``path`` and return the JSON answer."""
        return await self._call("GET", path, None)

    async def delete(self, path: str) -> dict[str, Any]:
        """DELETE ``path``; the answer's JSON object, or :class:`CliError`."""
        return await self._call("DELETE", path, None)

    async def request(self, method: str, path: str, body: dict | None) -> dict[str, Any]:
        """``method`` on ``path`` with ``body`` as JSON (PUT, PATCH …); the JSON answer."""
        return await self._call(method, path, body)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON to ``path`` and return the JSON answer."""
        return await self._call("POST", path, body)

    async def _call(self, method: str, path: str, body: dict | None) -> dict[str, Any]:
        response, raw = await self._send(method, path, body, self._read)
        return self._answer(response, raw)

    async def download(self, path: str, write, accept: bytes = b"text/csv") -> None:
        """GET ``path`` as a file, handing each chunk to ``write`` as it arrives (at most
        :data:`MAX_DOWNLOAD_BYTES`); an error answer becomes a :class:`CliError`."""
        async def read(response) -> bytes | None:
            if response.code >= 400:
                return await self._read(response)
            await treq.collect(response, _bounded(MAX_DOWNLOAD_BYTES, write))
            return None

        response, raw = await self._send("GET", path, None, read, accept=accept)
        if raw is not None:
            self._answer(response, raw)

    async def upload(self, path: str, source: Path, on_sent: Callable[[int], None],
                     timeout: float) -> dict[str, Any]:
        """POST the file ``source`` as the raw body of ``path`` (streamed from disk),
        telling ``on_sent`` how many bytes went so far; the JSON answer."""
        try:
            file = open(source, "rb")  # noqa: SIM115 -- closed below
        except OSError as e:
            raise CliError(text("cannot-read", path=source, reason=e.strerror or str(e)),
                           EXIT_USAGE) from None
        with file:
            producer = FileBodyProducer(_CountingReader(file, on_sent))
            response, raw = await self._send("POST", path, None, self._read, payload=producer,
                                             content_type=b"application/octet-stream",
                                             timeout=timeout)
        return self._answer(response, raw)

    async def _send(self, method: str, path: str, body: dict | None, read, *,
                    accept: bytes = b"application/json", payload=None,
                    content_type: bytes | None = None, timeout: float | None = None):
        url = self._base_url + path
        headers = self._headers()
        headers[b"accept"] = [accept]
        data = payload
        if content_type is not None:
            headers[b"content-type"] = [content_type]
        if body is not None:
            headers[b"content-type"] = [b"application/json"]
            data = json.dumps(body).encode("utf-8")
        timeout = timeout or self._timeout
        try:
            response = await self._http.request(method, url, headers=headers, data=data,
                                                timeout=timeout)
            return response, await read(response)
        except _TooLarge:
            raise CliError(text("answer-too-large", url=self._base_url)) from None
        except (TimeoutError, CancelledError):
            raise CliError(text("timeout", url=self._base_url, seconds=timeout),
                           EXIT_UNREACHABLE) from None
        except (net_error.ConnectError, net_error.DNSLookupError, net_error.ConnectionLost,
                ResponseFailed, ResponseNeverReceived, RequestTransmissionFailed) as e:
            raise CliError(text("unreachable", url=self._base_url, reason=_reason(e)),
                           EXIT_UNREACHABLE) from None

    def _answer(self, response, raw: bytes) -> dict[str, Any]:
        try:
            answer = json.loads(raw.decode("utf-8"))
            if not isinstance(answer, dict):
                raise ValueError("not an object")
        except ValueError:
            raise CliError(text("bad-answer", url=self._base_url, status=response.code)) from None
        if response.code >= 400:
            code = str(answer.get("code", "error"))
            message = str(answer.get("message", f"HTTP {response.code}"))
            exit_code = EXIT_NOT_LOGGED_IN if code in _NOT_LOGGED_IN_CODES else 1
            raise CliError(text("server-error", message=message, code=code), exit_code, code=code)
        return answer

    async def _read(self, response) -> bytes:
        chunks: list[bytes] = []
        await treq.collect(response, _bounded(MAX_ANSWER_BYTES, chunks.append))
        return b"".join(chunks)


class _CountingReader:
    """A file as a body producer reads it, counting the bytes read (= sent, give or take
    one chunk) for a progress bar."""

    def __init__(self, file, on_read: Callable[[int], None]):
        self._file = file
        self._on_read = on_read
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._read += len(data)
        self._on_read(self._read)
        return data

    def seek(self, *args):
        return self._file.seek(*args)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


class _TooLarge(ValueError):
    """An answer longer than this command takes."""


def _bounded(limit: int, sink):
    """A body collector that hands chunks to ``sink`` and stops (:class:`_TooLarge`) past
    ``limit`` bytes."""
    size = 0

    def take(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > limit:
            raise _TooLarge(f"more than {limit} bytes")
        sink(chunk)

    return take


def _reason(exception: Exception) -> str:
    """A one-line reason, looking inside the wrapper exceptions of twisted.web.client."""
    reasons = getattr(exception, "reasons", None)
    if reasons:
        return "; ".join(str(r.value) or type(r.value).__name__ for r in reasons)
    return str(exception) or type(exception).__name__

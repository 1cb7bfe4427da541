"""A small, strict JSON-over-HTTP layer on twisted.web.

Every answer is JSON, errors included: ``{"code": "...", "message": "..."}``
with a stable machine-readable ``code``.  Unknown routes, wrong methods,
oversized or malformed bodies, missing or mistyped fields and unexpected
exceptions all end up as such an answer -- never as a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.resource import Resource

log = Logger()

MAX_JSON_BODY = 64 * 1024


class ApiError(Exception):
    """An answer other than success: HTTP status, stable code, message, extra JSON fields."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


class BoundedRequest(server.Request):
    """A request whose body is capped: past ``max_body`` bytes the rest is dropped, not stored."""

    max_body = MAX_JSON_BODY
    body_too_large = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self.body_too_large = True
        super().gotLength(None if self.body_too_large else length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        if self.content.tell() + len(data) > self.max_body:
            self.body_too_large = True
            self.content.seek(0)
            self.content.truncate()
            return
        super().handleContentChunk(data)


def _security_headers(request: server.Request) -> None:
    request.setHeader(b"server", b"remotecomm")
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-content-type-options", b"nosniff")


def write_json(request: server.Request, status: int, body: dict) -> None:
    """Answer ``request`` with ``body`` as JSON (if the client is still there)."""
    if request.finished or request._disconnected:
        return
    request.setResponseCode(status)
    _security_headers(request)
    request.write(json.dumps(body, separators=(",", ":")).encode("utf-8") + b"\n")
    request.finish()


@dataclass(frozen=True)
class Download:
    """A handler's answer that is a file, not JSON (a CSV export): its bytes, media type
    and the name a browser saves it as."""

    body: bytes
    media_type: str
    filename: str


ANSWERED = object()
"""A handler's body when it answered the request itself (a streamed file)."""


def write_download(request: server.Request, status: int, download: Download) -> None:
    """Answer ``request`` with a file (``Content-Disposition: attachment``)."""
    if request.finished or request._disconnected:
        return
    request.setResponseCode(status)
    _security_headers(request)
    request.setHeader(b"content-type", download.media_type.encode("ascii"))
    request.setHeader(b"content-disposition",
                      f'attachment; filename="{download.filename}"'.encode("ascii"))
    request.write(download.body)
    request.finish()


def write_error(request: server.Request, error: ApiError) -> None:
    """Answer ``request`` with an :class:`ApiError`."""
    for name, value in error.headers.items():
        request.setHeader(name.encode("ascii"), value.encode("ascii"))
    write_json(request, error.status, {"code": error.code, "message": error.message,
                                       **error.extra})


MAX_JSON_DEPTH = 32
_OPENERS = re.compile(rb'[\[{]|[\]}]|"(?:[^"\\]|\\.)*"')


def json_depth(raw: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not
    count), found without parsing it -- Python's parser recurses and would overflow first."""
    depth = deepest = 0
    for match in _OPENERS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def read_json(request: server.Request) -> dict:
    """The request's body as a JSON object, or an :class:`ApiError` saying what is wrong."""
    if getattr(request, "body_too_large", False):
        raise ApiError(413, "body-too-large", f"the request body exceeds {MAX_JSON_BODY} bytes")
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type != b"application/json":
        raise ApiError(415, "unsupported-media-type", "send the body as application/json")
    request.content.seek(0)
    raw = request.content.read()
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, "too-deep", f"the request body nests deeper than "
                                        f"{MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "bad-json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad-json", "the request body must be a JSON object")
    return body


def take_str(body: dict, field: str, pattern: str | None = None, *,
             max_length: int = 1024) -> str:
    """A required string field of a JSON body, checked against ``pattern``."""
    if field not in body:
        raise ApiError(400, "missing-field", f"the field {field!r} is required", field=field)
    value = body.pop(field)
    if not isinstance(value, str) or not value:
        raise ApiError(400, "invalid-field", f"the field {field!r} must be a non-empty string",
                       field=field)
    if len(value) > max_length or (pattern is not None and not re.fullmatch(pattern, value)):
        raise ApiError(400, "invalid-field", f"the field {field!r} has an invalid value",
                       field=field)
    return value


def no_more_fields(body: dict) -> None:
    """Refuse fields the endpoint does not know (a misspelt field must not pass silently)."""
    if body:
        names = ", ".join(sorted(map(str, body)))
        raise ApiError(400, "unknown-field", f"unknown field(s): {names}", fields=sorted(body))


Handler = Callable[..., Awaitable[tuple[int, dict]]]


class Route:
    """A path pattern (``/api/v1/sessions/{request_id}``) and a handler per method."""

    def __init__(self, pattern: str, **handlers: Handler):
        self.pattern = pattern
        self.segments = pattern.strip("/").split("/")
        self.handlers = {method.upper(): handler for method, handler in handlers.items()}

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.segments):
            return None
        params = {}
        for want, got in zip(self.segments, segments, strict=True):
            if want.startswith("{") and want.endswith("}"):
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


class Router(Resource):
    """Dispatches every request by path and method to an async handler.

    A handler is ``async handler(request, **path_params) -> (status, body)``
    and raises :class:`ApiError` for anything but success.
    """

    isLeaf = True

    def __init__(self, routes: list[Route]):
        super().__init__()
        self._routes = routes

    def render(self, request: server.Request):
        d = Deferred.fromCoroutine(self._answer(request))
        d.addErrback(self._unexpected, request)
        return server.NOT_DONE_YET

    async def _answer(self, request: server.Request) -> None:
        try:
            handler, params = self._find(request)
            status, body = await handler(request, **params)
        except ApiError as error:
            write_error(request, error)
        else:
            if body is ANSWERED:
                return
            if isinstance(body, Download):
                write_download(request, status, body)
            else:
                write_json(request, status, body)

    def _find(self, request: server.Request) -> tuple[Handler, dict[str, str]]:
        try:
            path = request.path.decode("ascii")
        except UnicodeDecodeError:
            raise ApiError(404, "not-found", "no such resource") from None
        segments = [unquote(s) for s in path.strip("/").split("/")]
        for route in self._routes:
            params = route.match(segments)
            if params is None:
                continue
            method = request.method.decode("ascii", "replace").upper()
            if method not in route.handlers:
                allowed = ", ".join(sorted(route.handlers))
                raise ApiError(405, "method-not-allowed", f"use {allowed} here",
                               headers={"Allow": allowed})
            request.endpoint = f"{method} {route.pattern}"  # for permission checks
            request.route_params = params
            return route.handlers[method], params
        raise ApiError(404, "not-found", "no such resource")

    def _unexpected(self, failure, request: server.Request) -> None:
        log.failure("unexpected error answering {method} {path}", failure,
                    method=request.method, path=request.path)
        write_error(request, ApiError(500, "internal-error", "the server failed; it is logged"))


HEADER_DEADLINE = 10.0


class DeadlineHTTPChannel(http.HTTPChannel):
    """An HTTP channel that must receive a request's headers within an absolute deadline.

    twisted.web's idle timeout restarts with every byte, so a client trickling
    one byte a second would hold a connection forever.
    """

    header_deadline = HEADER_DEADLINE

    def connectionMade(self) -> None:
        super().connectionMade()
        self._header_call = self.callLater(self.header_deadline, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        log.info("closing a connection that sent no complete request headers in {deadline} s",
                 deadline=self.header_deadline)
        if self.transport is not None:
            self.transport.abortConnection()

    def allHeadersReceived(self) -> None:
        if self._header_call.active():
            self._header_call.cancel()
        super().allHeadersReceived()

    def connectionLost(self, reason) -> None:
        if self._header_call.active():
            self._header_call.cancel()
        super().connectionLost(reason)


def make_site(root: Resource, timeout: float = 60,
              header_deadline: float = HEADER_DEADLINE) -> server.Site:
    """A twisted.web site that never shows tracebacks, caps request bodies and makes
    clients send their request headers within ``header_deadline`` seconds."""
    site = server.Site(root, timeout=timeout)
    site.requestFactory = BoundedRequest
    site.displayTracebacks = False
    site.protocol = type("SiteChannel", (DeadlineHTTPChannel,),
                         {"header_deadline": header_deadline})
    return site

"""The terminal's local port: the session's app on 127.0.0.1 (S203, S231–S232, S243).

``remotecomm open`` serves the approved app of the device on a port of
127.0.0.1 under the session's own host name, ``<label>.localhost:PORT``
(browsers resolve ``*.localhost`` to loopback), so that two sessions never
share the device's cookies.  Who may use it (DECISIONS.md):

* only requests for that host name (421 otherwise);
* no cross-site requests: an ``Origin`` other than the session's own, or a
  ``Sec-Fetch-Site`` other than ``same-origin``/``none``, is refused (403);
* only whoever the CLI told: a browser opens the one-time bootstrap URL,
  which sets an HttpOnly cookie; a script sends the header
  :data:`ACCESS_HEADER`.  Requests with neither are refused (403).

Each HTTP request becomes one stream of the session.  Request bodies go out
as they arrive, within the stream's credit (the connection stops reading
when it is used up); response bodies come back as the device sends them,
and their credit is returned as the client's socket takes them.  HTTP/1.1
is parsed with h11 (sans-IO) because twisted.web renders a request only
after its whole body arrived.  ``Location`` headers pointing at the device
app are rewritten to the local address.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field

import h11
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from remotecomm.messages import text
from remotecomm.relay import envelope as env
from remotecomm.streams.heads import (MAX_HEAD, BadHead, RequestHead, decode_response,
                                      encode_request, end_to_end)
from remotecomm.terminal.tunnel import TerminalStream, TerminalStreams

log = Logger()

ACCESS_HEADER = b"x-remotecomm-local"
ACCESS_COOKIE = b"remotecomm-local"
BOOTSTRAP_PREFIX = b"/.remotecomm/bootstrap/"
HEAD_DEADLINE = 10.0       # a client has this long to send a request head
IDLE_TIMEOUT = 60.0        # a kept-alive connection without a request is closed
RESPONSE_TIMEOUT = 60.0    # no answer head from the device (its own limit is 30 s)
MAX_CONNECTIONS = 128
ALLOWED_FETCH_SITES = {b"same-origin", b"none"}


def session_label(device_id: str) -> str:
    """A fresh DNS label for one session's host name: the device ID and a random part."""
    base = re.sub(r"[^a-z0-9-]+", "-", device_id.lower()).strip("-")[:40] or "device"
    return f"{base}-{secrets.token_hex(4)}"


@dataclass
class LocalAccess:
    """Who may use the local port of one session (host name, cookie, header)."""

    label: str
    port: int = 0
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    bootstrap_code: str | None = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def host(self) -> bytes:
        return f"{self.label}.localhost:{self.port}".encode("ascii")

    @property
    def origin(self) -> bytes:
        return b"http://" + self.host

    @property
    def bootstrap_url(self) -> str:
        return f"http://{self.host.decode()}{BOOTSTRAP_PREFIX.decode()}{self.bootstrap_code}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host.decode()}/"

    def use_bootstrap(self, code: bytes) -> bool:
        """Whether ``code`` is the unused bootstrap code (it is used up either way)."""
        expected = self.bootstrap_code
        if expected is None:
            return False
        if hmac.compare_digest(code, expected.encode("ascii")):
            self.bootstrap_code = None
            return True
        return False

    def has_secret(self, headers: list[tuple[bytes, bytes]]) -> bool:
        secret = self.secret.encode("ascii")
        for name, value in headers:
            if name == ACCESS_HEADER and hmac.compare_digest(value.strip(), secret):
                return True
            if name == b"cookie":
                for part in value.split(b";"):
                    key, _, cookie = part.strip().partition(b"=")
                    if key == ACCESS_COOKIE and hmac.compare_digest(cookie, secret):
                        return True
        return False


@dataclass(frozen=True)
class Refusal:
    """The local port answers a request itself."""

    status: int
    text: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


def check_request(access: LocalAccess, method: bytes, target: bytes,
                  headers: list[tuple[bytes, bytes]]) -> Refusal | None:
    """The local port's rules for one request; ``None`` means "forward it"."""
    values: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        values.setdefault(name, []).append(value)
    hosts = values.get(b"host", [])
    if len(hosts) != 1 or hosts[0].lower() != access.host:
        return Refusal(421, text("local-wrong-host", url=access.base_url))
    fetch_site = values.get(b"sec-fetch-site", [])
    if any(site.lower() not in ALLOWED_FETCH_SITES for site in fetch_site):
        return Refusal(403, text("local-cross-site"))
    origins = values.get(b"origin", [])
    if any(origin.lower() != access.origin for origin in origins):
        return Refusal(403, text("local-other-origin"))
    if not target.startswith(b"/"):
        return Refusal(400, text("local-origin-form"))
    if target.startswith(BOOTSTRAP_PREFIX):
        if method != b"GET" or not access.use_bootstrap(target[len(BOOTSTRAP_PREFIX):]):
            return Refusal(403, text("local-link-used"))
        cookie = (ACCESS_COOKIE + b"=" + access.secret.encode("ascii") +
                  b"; Path=/; HttpOnly; SameSite=Strict")
        return Refusal(303, text("local-cookie-set"), ((b"location", b"/"),
                                                    (b"set-cookie", cookie)))
    if target.startswith(b"/.remotecomm/"):
        return Refusal(404, text("local-not-found"))
    if not access.has_secret(headers):
        return Refusal(403, text("local-no-access"))
    return None


def forwarded_head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request head sent to the device: without hop-by-hop headers and our secret."""
    fields = []
    for name, value in end_to_end(headers):
        if name in (ACCESS_HEADER, b"expect"):
            continue
        if name == b"cookie":
            kept = [part.strip() for part in value.split(b";")
                    if part.strip().partition(b"=")[0] != ACCESS_COOKIE and part.strip()]
            if not kept:
                continue
            value = b"; ".join(kept)
        fields.append((name, value))
    return encode_request(RequestHead(method, target, tuple(fields)))


class BadResponse(ValueError):
    """The device's response head cannot be passed on."""


def parse_response_head(head: bytes, app_origin: str | None,
                        local_origin: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, reason and headers of the device's answer (parsed by h11), ``Location``
    rewritten."""
    try:
        response = decode_response(head)
    except BadHead as e:
        raise BadResponse(str(e)) from None
    if not 200 <= response.status <= 599:
        raise BadResponse("malformed status line")
    origin = app_origin.encode("ascii") if app_origin else None
    headers = []
    for name, value in end_to_end(response.headers):
        if name in (b"location", b"content-location") and origin is not None and (
                value == origin or value.startswith(origin + b"/")
                or value.startswith(origin + b"?")):
            value = local_origin + value[len(origin):]
        headers.append((name, value))
    return response.status, response.reason, headers


@implementer(IPushProducer)
class LocalConnection(Protocol):
    """One client connection to the local port: HTTP/1.1 exchanges, one at a time."""

    factory: "LocalPortFactory"

    def __init__(self):
        self._http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._stream: TerminalStream | None = None
        self._reading_paused = False     # we stopped reading the socket
        self._writing_paused = False     # the socket's send buffer is full
        self._owed = 0                   # response bytes written while paused
        self._response_started = False
        self._timer = None
        self._closed = False

    # -- connection ---------------------------------------------------------------

    def connectionMade(self):
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        self.factory.connections.add(self)
        if len(self.factory.connections) > MAX_CONNECTIONS:
            self.transport.abortConnection()
            return
        self.transport.registerProducer(self, True)
        self._arm(HEAD_DEADLINE)

    def connectionLost(self, reason=None):
        self._closed = True
        self._disarm()
        self.factory.connections.discard(self)
        if self._stream is not None and not self._stream.done:
            self._stream.cancel("the local client went away")
        self._stream = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.factory.clock.callLater(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._stream is not None and not self._response_started:
            self._stream.cancel("no answer in time")
            self._stream = None
            self._refuse(Refusal(504, text("local-no-answer")))
        elif self._stream is None:
            self._close()

    # -- reading requests -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        try:
            self._http.receive_data(data)
        except RuntimeError:
            return
        self._pump()

    def _pump(self) -> None:
        while not self._closed:
            try:
                event = self._http.next_event()
            except h11.RemoteProtocolError as e:
                self._protocol_error(e)
                return
            if event is h11.NEED_DATA:
                self._resume_reading()
                return
            if event is h11.PAUSED:
                self._pause_reading()
                return
            if isinstance(event, h11.Request):
                self._request(event)
            elif isinstance(event, h11.Data):
                if self._stream is not None and not self._stream.send_body(bytes(event.data)):
                    self._pause_reading()
                    return
            elif isinstance(event, h11.EndOfMessage):
                if self._stream is not None:
                    self._stream.end_body()
                    if not self._response_started:
                        self._arm(RESPONSE_TIMEOUT)
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return
            if self._reading_paused:
                return

    def _pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()

    def _resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()

    def request_credit(self) -> None:
        """The stream has credit again: read on."""
        if self._reading_paused and self._http.their_state is h11.SEND_BODY:
            self._reading_paused = False
            self.transport.resumeProducing()
            self._pump()

    def _request(self, request: h11.Request) -> None:
        self._disarm()
        self._response_started = False
        headers = [(name, value) for name, value in request.headers]
        refusal = check_request(self.factory.access, request.method, request.target, headers)
        if refusal is None and request.http_version != b"1.1":
            refusal = Refusal(505, text("local-http-version"))
        if refusal is not None:
            self._refuse(refusal)
            return
        try:
            head = forwarded_head(request.method, request.target, headers)
            if len(head) > env.MAX_HEAD:
                raise ValueError
        except ValueError:
            self._refuse(Refusal(431, text("local-head-too-large")))
            return
        self._stream = self.factory.streams.open(head, self)
        if self._stream is None:
            self._refuse(Refusal(503, text("local-busy")))
            return
        if self._http.client_is_waiting_for_100_continue:
            self.transport.write(self._http.send(h11.InformationalResponse(
                status_code=100, headers=[])))

    def _protocol_error(self, error: h11.RemoteProtocolError) -> None:
        if self._http.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not self._response_started:
            self._refuse(Refusal(error.error_status_hint or 400, text("local-malformed")),
                         close=True)
        else:
            self._close()

    def _refuse(self, refusal: Refusal, close: bool = False) -> None:
        """Answer a request here (refusals, 502/504), then carry on or close."""
        body = (refusal.text + "\n").encode("utf-8")
        headers = [(b"content-type", b"text/plain; charset=utf-8"),
                   (b"content-length", b"%d" % len(body)), (b"cache-control", b"no-store")]
        if close or self._http.their_state is not h11.DONE:
            # The rest of the request body is not read: end the connection after this.
            headers.append((b"connection", b"close"))
        headers.extend(refusal.headers)
        self._response_started = True
        try:
            self.transport.write(self._http.send(h11.Response(status_code=refusal.status,
                                                             headers=headers)))
            self.transport.write(self._http.send(h11.Data(data=body)))
            self.transport.write(self._http.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            self._close()
            return
        self._next_cycle()

    def _next_cycle(self) -> None:
        self._stream = None
        if self._http.our_state is h11.MUST_CLOSE or self._http.their_state is not h11.DONE:
            self._close()
            return
        try:
            self._http.start_next_cycle()
        except h11.LocalProtocolError:
            self._close()
            return
        self._arm(IDLE_TIMEOUT)
        self._resume_reading()
        self.factory.clock.callLater(0, self._pump)

    # -- writing responses (called by the stream) ------------------------------------

    def response_head(self, head: bytes) -> None:
        self._disarm()
        try:
            status, reason, headers = parse_response_head(
                head, self.factory.streams.app_origin, self.factory.access.origin)
            data = self._http.send(h11.Response(status_code=status, reason=reason,
                                                headers=headers))
        except (BadResponse, h11.LocalProtocolError) as e:
            log.warn("unusable answer from the device: {error}", error=str(e))
            if self._stream is not None:
                self._stream.cancel("unusable response head")
            self._stream = None
            self._refuse(Refusal(502, text("local-bad-answer")),
                         close=True)
            return
        self._response_started = True
        self._write(data, len(head))

    def response_data(self, data: bytes) -> None:
        try:
            framed = self._http.send(h11.Data(data=data))
        except h11.LocalProtocolError:
            self._abandon("body beyond its length")
            return
        self._write(framed, len(data))

    def _write(self, data: bytes, credit: int) -> None:
        self.transport.write(data)
        if self._writing_paused:
            self._owed += credit
        elif self._stream is not None:
            self._stream.grant(credit)

    def response_end(self) -> None:
        try:
            self.transport.write(self._http.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            self._close()
            return
        if self._http.their_state is h11.SEND_BODY:
            # The device answered before the body was sent; the connection cannot go on.
            self._stream = None
            self._close()
            return
        self._next_cycle()

    def response_reset(self, code: int, reason: str) -> None:
        self._stream = None
        if not self._response_started:
            status = 502 if code != env.RESET_REFUSED else 403
            self._refuse(Refusal(status, text("local-device-refused", reason=reason)),
                         close=True)
        else:
            self._abandon(reason)

    def _abandon(self, reason: str) -> None:
        log.info("local exchange abandoned: {reason}", reason=reason)
        if self._stream is not None:
            self._stream.cancel(reason)
        self._stream = None
        self.transport.abortConnection()

    def _close(self) -> None:
        """Close once what is written has gone out.  The connection is its transport's
        producer: Twisted closes a transport that still has one only when the producer
        lets go, and a paused one would keep the connection open for ever."""
        if self.transport.producer is not None:
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    # -- IPushProducer: the socket's send buffer -----------------------------------

    def pauseProducing(self):
        self._writing_paused = True

    def resumeProducing(self):
        self._writing_paused = False
        owed, self._owed = self._owed, 0
        if owed and self._stream is not None:
            self._stream.grant(owed)

    def stopProducing(self):
        self._writing_paused = True


class LocalPortFactory(Factory):
    """The local port of one session."""

    protocol = LocalConnection

    def __init__(self, clock, access: LocalAccess, streams: TerminalStreams):
        self.clock = clock
        self.access = access
        self.streams = streams
        self.connections: set[LocalConnection] = set()

    def close_all(self) -> None:
        """The session ended: drop every client connection."""
        for connection in list(self.connections):
            connection._close()

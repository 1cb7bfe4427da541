"""One XMPP connection that stays up: reconnects, refuses while down, times out IQs.

:class:`XmppStream` is wokkel's ``StreamManager`` with three changes that
``../shared/notes/xmpp.md`` calls for: stanzas are refused (not queued)
while the stream is down, every IQ request has a timeout, and responses are
matched by random IDs *and* the expected sender, so one peer cannot answer
for another.  :class:`XmppConnector` keeps the connection up with a short
backoff and lets its owner impose a long pause (a wrong password).
"""

from __future__ import annotations

import secrets
from typing import Callable

from twisted.application.internet import ClientService
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error, xmlstream
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from remotecomm.xmpp.compat import subprotocols

log = Logger()

DEFAULT_IQ_TIMEOUT = 10.0


class NotConnected(Exception):
    """The stream is down: the stanza was refused, not queued."""


def _same_entity(a: str | None, b: str | None) -> bool:
    try:
        return a is not None and b is not None and JID(a) == JID(b)
    except Exception:
        return False


class XmppStream(subprotocols.StreamManager):
    """A stream manager that refuses instead of queueing and times out every IQ."""

    def __init__(self, factory, clock: IReactorTime, iq_timeout: float = DEFAULT_IQ_TIMEOUT):
        super().__init__(factory, reactor=clock)
        self.timeout = iq_timeout
        self._expected_senders: dict[str, str] = {}

    @property
    def connected(self) -> bool:
        """Whether the stream is up and initialized."""
        return self._initialized

    def send(self, obj) -> None:
        """Send now, or raise :class:`NotConnected`."""
        if not self._initialized:
            raise NotConnected("the XMPP stream is down")
        self.xmlstream.send(obj)

    def request_iq(self, to: str, payload: domish.Element, *, kind: str = "set",
                   timeout: float | None = None) -> defer.Deferred:
        """Send an IQ with ``payload`` to ``to``; fires with the result IQ.

        Fails with :class:`NotConnected` at once when the stream is down (or when it goes
        down before the answer), with
        a ``StanzaError`` on an error answer, and with ``TimeoutError`` when
        no answer arrives in time.
        """
        if not self._initialized:
            return defer.fail(NotConnected("the XMPP stream is down"))
        iq = domish.Element((None, "iq"))
        iq["type"] = kind
        iq["to"] = to
        iq["id"] = secrets.token_hex(8)
        iq.addChild(payload)
        d = defer.Deferred()
        self._iqDeferreds[iq["id"]] = d
        self._expected_senders[iq["id"]] = to

        def on_timeout() -> None:
            self._iqDeferreds.pop(iq["id"], None)
            self._expected_senders.pop(iq["id"], None)
            d.errback(xmlstream.TimeoutError(f"no answer from {to} within {delay} s"))

        delay = self.timeout if timeout is None else timeout
        call = self._reactor.callLater(delay, on_timeout)

        def cancel_timeout(result):
            if call.active():
                call.cancel()
            return result

        d.addBoth(cancel_timeout)
        self.xmlstream.send(iq)
        return d

    def _onIQResponse(self, iq: domish.Element) -> None:
        stanza_id = iq.getAttribute("id")
        expected = self._expected_senders.get(stanza_id)
        if expected is None or not _same_entity(iq.getAttribute("from"), expected):
            return  # not ours, or an answer from the wrong peer: ignore it
        del self._expected_senders[stanza_id]
        d = self._iqDeferreds.pop(stanza_id)
        iq.handled = True
        if iq["type"] == "error":
            d.errback(error.exceptionFromStanza(iq))
        else:
            d.callback(iq)

    def _disconnected(self, reason) -> None:
        self._expected_senders = {}
        if not hasattr(reason, "trap"):
            reason = Failure(ConnectionLost())
        # IQs still waiting for an answer fail as NotConnected, as request_iq promises (the
        # base class would fail them with the stream's own reason, e.g. ConnectionLost).
        waiting, self._iqDeferreds = self._iqDeferreds, {}
        super()._disconnected(reason)
        for d in waiting.values():
            d.errback(NotConnected("the XMPP stream went down before the answer came"))


def reply_error(stream: XmppStream, iq: domish.Element, condition: str, text: str,
                kind: str | None = None) -> None:
    """Answer ``iq`` with a stanza error (no-op if the stream went down meanwhile)."""
    response = error.StanzaError(condition, type=kind, text=text).toResponse(iq)
    try:
        stream.send(response)
    except NotConnected:
        pass


def reply_result(stream: XmppStream, iq: domish.Element,
                 payload: domish.Element | None = None) -> None:
    """Answer ``iq`` with a result (empty, or carrying ``payload``)."""
    response = xmlstream.toResponse(iq, "result")
    if payload is not None:
        response.addChild(payload)
    try:
        stream.send(response)
    except NotConnected:
        pass


class UnknownIqHandler(subprotocols.XMPPHandler):
    """Answers every IQ request no other handler took with ``service-unavailable``."""

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver('/iq[@type="get"]', self._fallback, -1)
        self.xmlstream.addObserver('/iq[@type="set"]', self._fallback, -1)

    def _fallback(self, iq: domish.Element) -> None:
        if getattr(iq, "handled", False):
            return
        iq.handled = True
        self.xmlstream.send(error.StanzaError(
            "service-unavailable", text="unknown request").toResponse(iq))


class XmppConnector(Service):
    """Keeps one XMPP connection up through ``endpoint``.

    Reconnects with an exponential backoff capped at ``max_delay`` seconds;
    :meth:`hold_off` makes the next attempt wait longer (a refused password
    must not make a device hammer the server).
    """

    def __init__(self, clock: IReactorTime, endpoint: IStreamClientEndpoint, factory, *,
                 max_delay: float = 2.0):
        self._max_delay = max_delay
        self._hold_off: float | None = None
        self._client = ClientService(endpoint, factory, retryPolicy=self._retry_delay,
                                     clock=clock)

    def _retry_delay(self, failed_attempts: int) -> float:
        if self._hold_off is not None:
            return self._hold_off
        return min(self._max_delay, 0.25 * 2 ** max(0, failed_attempts - 1))

    def hold_off(self, seconds: float) -> None:
        """Make reconnect attempts wait ``seconds`` until a stream initializes again."""
        self._hold_off = seconds

    def initialized(self) -> None:
        """A stream initialized: back to the short backoff."""
        self._hold_off = None

    def startService(self) -> None:
        super().startService()
        self._client.startService()

    def stopService(self):
        super().stopService()
        return self._client.stopService()


def on_stream_error(factory, callback: Callable[[Exception], None]) -> None:
    """Call ``callback(exception)`` for every stream error the server sends."""
    def observe(failure: Failure) -> None:
        callback(failure.value)

    factory.addBootstrap(xmlstream.STREAM_ERROR_EVENT, observe)

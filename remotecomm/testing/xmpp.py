"""An in-memory XMPP connection for unit tests of stream handlers.

:class:`PipeConnection` connects an :class:`~remotecomm.xmpp.stream.XmppStream`
to an in-memory peer (wokkel's ``XmlPipe``): what the stream sends lands in
``sent``; :meth:`receive` delivers a stanza to the stream as if the server
had sent it.
"""

from __future__ import annotations

from twisted.words.xish import domish

from remotecomm.xmpp.compat import generic
from remotecomm.xmpp.stream import XmppStream


class PipeConnection:
    """One in-memory connection of ``stream``; ``connect()`` initializes it."""

    def __init__(self, stream: XmppStream):
        self.stream = stream
        self.pipe = generic.XmlPipe()
        self.sent: list[domish.Element] = []
        self.pipe.source.addObserver("/*", self.sent.append)

    def connect(self) -> "PipeConnection":
        """Connect and initialize (as after a successful authentication)."""
        self.stream._connected(self.pipe.sink)
        self.stream._authd(self.pipe.sink)
        return self

    def disconnect(self) -> None:
        """The connection drops."""
        self.stream._disconnected(None)

    def receive(self, xml: str | domish.Element) -> domish.Element:
        """Deliver a stanza (XML text or element) to the stream."""
        element = parse(xml) if isinstance(xml, str) else xml
        self.pipe.source.send(element)
        return element

    def take(self) -> list[domish.Element]:
        """What the stream sent since the last call."""
        sent, self.sent[:] = list(self.sent), []
        return sent


def parse(xml: str) -> domish.Element:
    """Parse one XML element (test input; DTDs are refused)."""
    if "<!DOCTYPE" in xml.upper():
        raise ValueError("no DTDs")
    elements: list[domish.Element] = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = elements.append
    stream.DocumentEndEvent = lambda: None
    # Inside a stream root, as on the wire: each top-level child is one stanza.
    stream.parse(b"<stream>" + xml.encode("utf-8") + b"</stream>")
    return elements[0]

"""The agent's side of the XMPP link to the manager: announcing the device.

After every (re)connect, and whenever a manager component's presence arrives
(its probe after *it* reconnected), the agent sends each configured
component a directed presence -- so the XMPP server tells the component
when the device goes away -- and a hello with its versions and app list.
A hello answered with a ``wait`` error (the component is briefly away) is
retried a few times; the component's next probe triggers a new one anyway.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.xmlstream import TimeoutError
from twisted.words.xish import domish

from remotecomm.sessions.messages import Hello
from remotecomm.xmpp.compat import subprotocols
from remotecomm.xmpp.payloads import encode
from remotecomm.xmpp.stream import NotConnected

log = Logger()


class ManagerLink(subprotocols.XMPPHandler):
    """Announces the device to the manager's components and re-announces when they return."""

    def __init__(self, clock: IReactorTime, components: tuple[str, ...], hello: Hello, *,
                 retry_delay: float = 2.0, max_retries: int = 5):
        super().__init__()
        self._clock = clock
        self._components = components
        self._hello = hello
        self._retry_delay = retry_delay
        self._max_retries = max_retries
        self.announced: set[str] = set()

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/presence", self._on_presence)
        self.announced = set()
        # Initial presence makes the session "available", without which Prosody does
        # not deliver a component's probe (presence to our bare JID).  Priority -1:
        # never the target of messages to the bare JID.
        initial = domish.Element((None, "presence"))
        initial.addElement("priority", content="-1")
        try:
            self.parent.send(initial)
        except NotConnected:
            return
        for component in self._components:
            self.announce(component)

    def connectionLost(self, reason) -> None:
        self.announced = set()

    def set_firmware_version(self, version: str) -> None:
        """The device's panel said which firmware runs: say hello again if it changed."""
        self.describe(version, self._hello.settings, self._hello.settings_version)

    def describe(self, firmware_version: str, settings: tuple = (),
                 settings_version: int | None = None) -> None:
        """The device's panel said what it runs and which settings it has: say hello again
        if that changed."""
        described = replace(self._hello, firmware_version=firmware_version,
                            settings=tuple(settings), settings_version=settings_version)
        if described == self._hello:
            return
        self._hello = described
        if self.xmlstream is not None:
            for component in self._components:
                self.announce(component)

    def is_component(self, sender: str | None) -> str | None:
        """The configured component ``sender`` belongs to, or ``None``.

        The XMPP server lets only a component send from addresses in its
        domain, so the domain alone identifies it.
        """
        try:
            host = JID(sender).host if sender else None
        except Exception:
            return None
        return host if host in self._components else None

    def _on_presence(self, presence: domish.Element) -> None:
        component = self.is_component(presence.getAttribute("from"))
        if component is None or presence.getAttribute("type") not in (None, "probe"):
            return
        log.info("manager component {component} is (back) online: announcing",
                 component=component)
        self.announce(component)

    def announce(self, component: str, attempt: int = 1) -> None:
        """Directed presence and hello to ``component``."""
        presence = domish.Element((None, "presence"))
        presence["to"] = component
        try:
            self.parent.send(presence)
        except NotConnected:
            return
        d = self.parent.request_iq(component, encode(self._hello))
        d.addCallbacks(lambda _: self._announced(component),
                       lambda f: self._failed(f, component, attempt))

    def _announced(self, component: str) -> None:
        self.announced.add(component)
        log.info("announced to {component}: agent {agent_version}, apps {apps}",
                 component=component, agent_version=self._hello.agent_version,
                 apps=list(self._hello.apps))

    def _failed(self, failure, component: str, attempt: int) -> None:
        if failure.check(NotConnected):
            return
        retry = failure.check(TimeoutError) or (
            failure.check(error.StanzaError) and failure.value.type == "wait")
        reason = getattr(failure.value, "condition", None) or failure.getErrorMessage()
        if retry and attempt < self._max_retries:
            log.info("hello to {component} not answered ({reason}); retry {attempt} in "
                     "{delay} s", component=component, reason=reason, attempt=attempt,
                     delay=self._retry_delay)
            self._clock.callLater(self._retry_delay, self.announce, component, attempt + 1)
        else:
            log.warn("hello to {component} refused ({reason}); waiting for its probe",
                     component=component, reason=reason)

"""Small building blocks for the ``MultiService`` trees that ``makeService`` returns."""

from typing import Callable

from twisted.application.service import MultiService, Service
from twisted.internet.defer import ensureDeferred, maybeDeferred
from twisted.logger import Logger

log = Logger()


class SequentialMultiService(MultiService):
    """A ``MultiService`` that stops its children one after another, last added first.

    ``MultiService`` stops them all at once; here a service may still use the
    ones added before it (the relay flushing logs through the stores) while it
    stops.
    """

    def stopService(self):
        Service.stopService(self)

        async def stop_in_order() -> None:
            for service in reversed(list(self)):
                try:
                    await maybeDeferred(service.stopService)
                except Exception:
                    log.failure("stopping {name} failed", name=service.name)

        return ensureDeferred(stop_in_order())


class StartStopService(Service):
    """Calls ``start`` when the application starts and ``stop`` when it stops.

    For thread pools and similar objects that need no more than that.
    """

    def __init__(self, name: str, start: Callable[[], None], stop: Callable[[], object]):
        self.setName(name)
        self._start = start
        self._stop = stop

    def startService(self) -> None:
        super().startService()
        self._start()

    def stopService(self):
        super().stopService()
        return self._stop()


def exit_after_shutdown(reactor, code: int) -> None:
    """Stop the reactor in order (services stop, logs flush), then exit with ``code``.

    twistd has no way to set its exit status, so the process ends from an
    "after shutdown" trigger, once everything else has run.
    """
    def leave() -> None:
        import os
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    reactor.addSystemEventTrigger("after", "shutdown", leave)
    if reactor.running:
        reactor.stop()

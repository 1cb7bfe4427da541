"""Periodic clean-up of account data that can no longer be used."""

from __future__ import annotations

from twisted.application.internet import TimerService
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from remotecomm.clock import now_us
from remotecomm.store.accounts import purge_tokens
from remotecomm.store.engine import Store

log = Logger()

PURGE_INTERVAL = 3600.0                   # seconds between purges
PURGE_GRACE_US = 7 * 24 * 3600 * 10**6    # keep dead tokens this long (for investigations)


async def purge_dead_tokens(store: Store, clock) -> int:
    """Delete API tokens that expired or were revoked more than a week ago; how many."""
    count = await store.run(purge_tokens, now_us(clock) - PURGE_GRACE_US)
    if count:
        log.info("purged {count} API tokens that expired or were revoked over a week ago",
                 count=count)
    return count


def token_purge_service(store: Store, clock) -> TimerService:
    """A service that purges dead API tokens at start and every hour."""
    def purge():
        return ensureDeferred(purge_dead_tokens(store, clock)).addErrback(
            lambda f: log.failure("purging API tokens failed", f))
    service = TimerService(PURGE_INTERVAL, purge)
    service.clock = clock
    service.setName("token-purge")
    return service

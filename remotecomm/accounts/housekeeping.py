"""Periodic clean-up of account data that can no longer be used."""

from __future__ import annotations

from twisted.application.internet import TimerService
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from remotecomm.clock import now_us, seconds_to_us
from remotecomm.store.accounts import purge_login_failures, purge_tokens
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


async def purge_old_login_failures(store: Store, clock, window: float) -> int:
    """Forget failed logins the throttle no longer counts; how many."""
    return await store.run(purge_login_failures, now_us(clock) - seconds_to_us(window))


def token_purge_service(store: Store, clock, failure_window: float = 900.0) -> TimerService:
    """A service that purges dead API tokens and old failed logins at start and every hour."""
    async def both():
        await purge_dead_tokens(store, clock)
        await purge_old_login_failures(store, clock, failure_window)

    def purge():
        return ensureDeferred(both()).addErrback(
            lambda f: log.failure("purging API tokens failed", f))
    service = TimerService(PURGE_INTERVAL, purge)
    service.clock = clock
    service.setName("token-purge")
    return service

"""Throttling failed logins, in the store: it survives restarts and every manager shares it.

Three counts over a window (default 15 minutes):

* **per account and address**: after ``per_account`` failures (default 5)
  the account may not try again *from that address* until the oldest leaves
  the window (``429 too-many-attempts``);
* **per address**: after ``per_address`` failures (default 20, any
  accounts) nothing may try from that address;
* **per account**, from any address: past ``per_account`` failures each
  attempt for the account waits first, 0.5 s doubling per further failure,
  at most :data:`MAX_DELAY` -- guessing slows down, but the account is never
  locked: its owner, from another address, logs in with the right password
  (a little later).

Unknown accounts are counted exactly like known ones, so the throttle does
not tell which user IDs exist.  A successful login forgives the account's
failures from that address only.  Failures older than the window are purged
with the dead tokens (:mod:`remotecomm.accounts.housekeeping`).
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from remotecomm.clock import now_us, seconds_to_us
from remotecomm.store import accounts as account_rows
from remotecomm.store.engine import Store

MAX_DELAY = 8.0
FIRST_DELAY = 0.5


class LoginThrottle:
    """Failed logins per (account, address), per address and per account, in the store."""

    def __init__(self, store: Store, clock: IReactorTime, per_account: int, per_address: int,
                 window: float):
        self._store = store
        self._clock = clock
        self.per_account = per_account
        self.per_address = per_address
        self.window = window

    async def check(self, account: str, address: str) -> tuple[float | None, float]:
        """``(retry_after, delay)``: seconds until this account may try from this address
        (``None``: it may now), and how long this attempt waits first."""
        now = now_us(self._clock)
        counts = await self._store.run(account_rows.login_failure_counts, account, address,
                                       now - seconds_to_us(self.window))
        waits = []
        if counts.pair >= self.per_account:
            waits.append(counts.oldest_pair_us)
        if counts.address >= self.per_address:
            waits.append(counts.oldest_address_us)
        if waits:
            window_end = min(waits) + seconds_to_us(self.window)
            return max((window_end - now) / 1_000_000, 1.0), 0.0
        beyond = counts.account - self.per_account
        delay = 0.0 if beyond < 0 else min(FIRST_DELAY * 2 ** beyond, MAX_DELAY)
        return None, delay

    async def record_failure(self, account: str, address: str) -> None:
        """Count one failed attempt."""
        await self._store.run(account_rows.add_login_failure, account, address,
                              now_us(self._clock))

    async def record_success(self, account: str, address: str) -> None:
        """The account logged in from ``address``: its failures from there are forgiven."""
        await self._store.run(account_rows.clear_login_failures, account, address)

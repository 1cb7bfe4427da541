"""Throttling failed logins per account and per source address.

After ``limit`` failures within ``window`` seconds, further attempts for
that account (or from that address) are refused until the oldest failure
leaves the window.  Unknown accounts are throttled exactly like known ones,
so the throttle does not tell which user IDs exist.  Memory is bounded: the
least recently failing keys are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from twisted.internet.interfaces import IReactorTime


class _FailureWindows:
    def __init__(self, limit: int, window: float, max_keys: int):
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _prune(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str, now: float) -> float | None:
        times = self._prune(key, now)
        if times is None or len(times) < self.limit:
            return None
        return times[0] + self.window - now

    def fail(self, key: str, now: float) -> None:
        times = self._prune(key, now)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.limit)
        times.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)


class LoginThrottle:
    """Counts failed logins per account and per address against a clock."""

    def __init__(self, clock: IReactorTime, per_account: int, per_address: int,
                 window: float, max_keys: int = 10_000):
        self._clock = clock
        self._accounts = _FailureWindows(per_account, window, max_keys)
        self._addresses = _FailureWindows(per_address, window, max_keys)

    def retry_after(self, account: str, address: str) -> float | None:
        """Seconds until this account may try again from this address, or ``None`` if it may now."""
        now = self._clock.seconds()
        waits = [w for w in (self._accounts.retry_after(account, now),
                             self._addresses.retry_after(address, now)) if w is not None]
        return max(waits) if waits else None

    def record_failure(self, account: str, address: str) -> None:
        """Count one failed attempt against both the account and the address."""
        now = self._clock.seconds()
        self._accounts.fail(account, now)
        self._addresses.fail(address, now)

    def record_success(self, account: str) -> None:
        """A successful login clears the account's failures (not the address's)."""
        self._accounts.forget(account)

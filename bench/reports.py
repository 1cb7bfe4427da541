"""Scenario 8: a unit's report over 100,000 sessions on SQLite (the issue's bound: 0.5 s).

A generated data set -- 100,000 ended sessions of one unit over 90 days
(300 devices, 20 users, a mix of end reasons) and 20,000 of another unit --
goes into a fresh, migrated manager store; then the store call behind
``GET /api/v1/reports/sessions`` runs for the whole period, ungrouped and by
each grouping.  In process: the HTTP layer around it adds the JSON encoding
of a few hundred groups at most.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from remotecomm.reports.periods import period, zone
from remotecomm.reports.sessions import unit_report
from remotecomm.store.accounts import insert_unit
from remotecomm.store.engine import migrate, open_sqlite
from remotecomm.store.schema import sessions

S = 1_000_000
START = 1_790_000_000 * S  # 2026-09-21
REASONS = ["normal"] * 8 + ["refused", "dropped-device", "idle-timeout", "ended-by-device"]


def generate(path: Path, count: int, other: int) -> None:
    """``count`` ended sessions of unit ``bench`` (Europe/Berlin) and ``other`` of ``else``."""
    engine = open_sqlite(path)
    migrate(engine)
    rng = random.Random(8)
    with engine.begin() as connection:
        insert_unit(connection, "bench", "Bench", "Europe/Berlin", 0)
        insert_unit(connection, "else", "Else", "UTC", 0)
        rows = []
        for n in range(count + other):
            at = START + rng.randrange(90 * 86400) * S
            ran = rng.random() < 0.9
            duration = rng.randrange(1, 7200) * S if ran else None
            rows.append(dict(
                request_id=f"bench-{n:016d}", state="ended",
                unit_id="bench" if n < count else "else", user_id=f"user-{n % 20}",
                terminal_id=f"t-{n % 50}", device_id=f"mfp-{n % 300:04d}",
                app_id=("web-server", "remote-panel")[n % 2], terminal_token_delivered=ran,
                approved_by_test_approver=False, requested_us=at - 30 * S, counted_at_us=at,
                started_us=at if ran else None, duration_us=duration,
                bytes_to_device=rng.randrange(10**7) if ran else None,
                bytes_from_device=rng.randrange(10**8) if ran else None,
                end_reason=rng.choice(REASONS) if ran else "refused",
                ended_us=at + (duration or 0), device_notified_us=at if ran else None,
                device_reported=ran and rng.random() < 0.95))
            if len(rows) == 10_000:
                connection.execute(sessions.insert(), rows)
                rows = []
        if rows:
            connection.execute(sessions.insert(), rows)
    engine.dispose()


def report_speed(results, folder: Path, *, quick: bool) -> None:
    """Time the report of the generated unit, ungrouped and by each grouping."""
    count = 2_000 if quick else 100_000
    path = folder / "reports.sqlite3"
    generate(path, count, count // 5)
    engine = open_sqlite(path)
    asked = period("2026-09-01", "2026-12-31", zone("Europe/Berlin"), 0)
    try:
        for group in (None, "device", "user", "app", "day"):
            with engine.connect() as connection:
                begun = time.perf_counter()
                report = unit_report(connection, "bench", asked, group)
                elapsed = time.perf_counter() - begun
            assert report["totals"]["sessions"] == count, report["totals"]
            results.add("8-report", f"{count:,} sessions, by {group or 'nothing'}",
                        "remotecomm (SQLite)", "time", elapsed * 1000, "ms",
                        higher_is_better=False)
    finally:
        engine.dispose()

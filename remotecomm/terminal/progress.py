"""A one-line progress bar for uploads and installs: percent, transfer rate, a bar.

It draws on the terminal only (a pipe or a file gets no bar, only the
command's final lines), redraws at most ten times a second, and measures the
terminal's width at every redraw, clearing the line first: a terminal made
narrower or wider mid-way gets a bar that fits, never a wrapped one.
"""

from __future__ import annotations

import shutil
import time
from typing import Callable, TextIO

REDRAW_EVERY = 0.1
_UNITS = ("B", "KiB", "MiB", "GiB")


def rate_text(bytes_per_second: float) -> str:
    """``12.3 MiB/s``."""
    value, unit = float(bytes_per_second), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.1f} {_UNITS[unit]}/s"


def progress_line(label: str, percent: int, rate: float | None, width: int) -> str:
    """The line for ``percent`` (and a rate, if known) in ``width`` columns."""
    percent = max(0, min(100, percent))
    tail = f" {percent:3d}%" + (f"  {rate_text(rate)}" if rate is not None else "")
    room = width - len(label) - len(tail) - 4
    if room < 10:  # too narrow for a bar: the numbers alone
        return (label + tail)[:max(width - 1, 1)]
    filled = room * percent // 100
    return f"{label} [{'#' * filled}{'.' * (room - filled)}]{tail}"


class ProgressBar:
    """Draws progress on ``stream`` if it is a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, label: str,
                 clock: Callable[[], float] = time.monotonic,
                 width: Callable[[], int] = lambda: shutil.get_terminal_size().columns):
        self._stream = stream
        self._label = label
        self._clock = clock
        self._width = width
        self._started = clock()
        self._drawn_at: float | None = None
        self._drawn = False
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())

    def relabel(self, label: str) -> None:
        """A new phase (``installing``): the rate starts again."""
        self._label = label
        self._started = self._clock()
        self._drawn_at = None

    def update(self, percent: int, done_bytes: int | None = None) -> None:
        """Show ``percent`` (with the rate, when bytes are counted)."""
        if not self.enabled:
            return
        now = self._clock()
        if self._drawn_at is not None and now - self._drawn_at < REDRAW_EVERY and percent < 100:
            return
        self._drawn_at = now
        elapsed = now - self._started
        rate = done_bytes / elapsed if done_bytes is not None and elapsed > 0 else None
        line = progress_line(self._label, percent, rate, max(self._width(), 20))
        self._stream.write("\r\x1b[K" + line)
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line (the command's own lines follow)."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

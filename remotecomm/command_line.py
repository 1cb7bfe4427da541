"""What our two commands share: how they fail, how they check arguments, how they print
tables.

``remotecomm`` (the technician's terminal, :mod:`remotecomm.terminal`) and
``remotecomm-admin`` (the server host, :mod:`remotecomm.admin`) fail the same
way: one clear line on stderr and a documented exit code.  Argument checkers
here use the identifier shapes of :mod:`remotecomm.identifiers`.  Nothing
here imports server code.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from remotecomm.identifiers import is_valid
from remotecomm.messages import text

EXIT_OK = 0
EXIT_FAILED = 1        # the server refused, or something went wrong
EXIT_USAGE = 2         # bad arguments or bad local input
EXIT_NOT_LOGGED_IN = 3  # no API token, or the server no longer accepts it
EXIT_UNREACHABLE = 4   # the server did not answer
# remotecomm open: how the request ended when it did not end approved
EXIT_REFUSED = 10             # the device's operator said NO (or a test approver was refused)
EXIT_APPROVAL_TIMEOUT = 11    # nobody answered on the device in time
EXIT_DEVICE_OFFLINE = 12      # the device is not connected
EXIT_EXPIRED = 13             # approved, but not joined in time
EXIT_DEVICE_NOT_FOUND = 14    # no such device in your unit
EXIT_UNKNOWN_APP = 15         # the device has no such app
EXIT_SESSION_EXISTS = 16      # a session with this device from this terminal is still open
EXIT_SESSION_LOST = 17        # the session ended abnormally (the relay or the device went away)
EXIT_NO_SESSION = 18          # `close`: no open session with that device here
EXIT_INTERRUPTED = 130        # Ctrl-C (the request was withdrawn, if one was waiting)


class CliError(Exception):
    """A failure to report as one line with an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code  # the server's error code, when the server refused


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows of text cells as aligned lines (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def identifier(pattern: str, what: str):
    """An argparse type that accepts only values of ``pattern`` (one of identifiers')."""
    def check(value: str) -> str:
        if not is_valid(pattern, value):
            raise argparse.ArgumentTypeError(f"{value!r} is not a valid {what}")
        return value
    check.__name__ = what
    return check


def printable_text(max_length: int):
    """An argparse type for a short line of printable text."""
    def check(value: str) -> str:
        if not value.strip() or len(value) > max_length or not value.isprintable():
            raise argparse.ArgumentTypeError(
                f"expected printable text of 1 to {max_length} characters")
        return value
    check.__name__ = "text"
    return check


def read_password(from_stdin: bool, prompt: str, confirm: bool) -> str:
    """A password from the first line of stdin, or typed twice (``confirm``) at a terminal."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(prompt)
        if confirm and getpass.getpass(text("password-again")) != password:
            raise CliError(text("passwords-differ"), EXIT_USAGE)
    else:
        raise CliError("no password: use --password-stdin or run in a terminal", EXIT_USAGE)
    if not password:
        raise CliError(text("password-empty"), EXIT_USAGE)
    return password


def report(program: str, run) -> None:
    """Run ``run()`` (which returns the lines to print) and exit as our commands do."""
    try:
        lines = run()
    except CliError as e:
        sys.stderr.write(f"{program}: {e.message}\n")
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None
    for line in lines:
        print(line)
    raise SystemExit(EXIT_OK)

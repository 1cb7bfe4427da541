"""``remotecomm``: the command a technician types.

::

    remotecomm login [--user USER] [--password-stdin]
    remotecomm devices [--json]
    remotecomm open DEVICE APP [--port N]
                                      (serves the app on 127.0.0.1 until Ctrl-C or `close`)
    remotecomm close DEVICE
    remotecomm logout

It imports no server code: ``remotecomm admin …`` is the server host's
``remotecomm-admin``, to which :mod:`remotecomm.__main__` hands over.  Every
failure is one line on stderr and an exit code from
:mod:`remotecomm.command_line`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from twisted.internet.defer import Deferred, ensureDeferred, race
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.task import deferLater

from remotecomm import __version__
from remotecomm.clock import iso_from_us
from remotecomm.command_line import (EXIT_APPROVAL_TIMEOUT, EXIT_DEVICE_NOT_FOUND,
                                     EXIT_DEVICE_OFFLINE, EXIT_EXPIRED, EXIT_INTERRUPTED,
                                     EXIT_NO_SESSION, EXIT_NOT_LOGGED_IN, EXIT_REFUSED,
                                     EXIT_SESSION_EXISTS, EXIT_SESSION_LOST, EXIT_UNKNOWN_APP,
                                     EXIT_UNREACHABLE, EXIT_USAGE, CliError, identifier,
                                     read_password, report, table)
from remotecomm.identifiers import APP_ID, DEVICE_ID, MAIL_ADDRESS, REQUEST_ID, UNIT_ID, USER_ID
from remotecomm.messages import text
from remotecomm.relay.client import RelayClient, RelayClosed
from remotecomm.terminal import admin as administration, maintain as maintenance
from remotecomm.terminal.client import ApiClient
from remotecomm.terminal.local_port import (ACCESS_HEADER, LocalAccess, LocalPortFactory,
                                            session_label)
from remotecomm.terminal.settings import load_settings, load_state, save_state, terminal_home
from remotecomm.terminal.tunnel import TerminalStreams

# What this terminal says of itself with every session request (the record's terminal
# source): client, version, operating system.
CLIENT_DESCRIPTION = {"name": "remotecomm-cli", "version": __version__,
                      "os_name": (platform.system() or "unknown")[:64],
                      "os_version": (platform.release() or "unknown")[:64]}


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 600:
        raise argparse.ArgumentTypeError("the timeout must be between 0 and 600 seconds")
    return seconds


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0 to 65535)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the whole command."""
    parser = argparse.ArgumentParser(
        prog="remotecomm", description="Remote sessions to office devices.",
        epilog="On the server host, `remotecomm admin …` (or remotecomm-admin) sets up the "
               "server and provisions units, users and devices.")
    parser.add_argument("--version", action="version", version=f"remotecomm {__version__}")
    parser.add_argument("--server", help="the manager's URL (or REMOTECOMM_SERVER)")
    parser.add_argument("--ca", help="CA certificate to trust (or REMOTECOMM_CA)")
    parser.add_argument("--timeout", type=_positive_seconds, default=15.0,
                        help="seconds to wait for the server (default 15)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    login = commands.add_parser("login", help="log in and register this terminal")
    login.add_argument("--user", type=str.lower, help="your user ID")
    login.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    login.add_argument("--unit", type=identifier(UNIT_ID, "unit ID"),
                       help="the unit to act in, if you belong to several (remembered)")
    unit = commands.add_parser("unit", help="show your units, or choose the one commands act "
                                            "in (remembered)")
    unit.add_argument("unit_id", nargs="?", type=identifier(UNIT_ID, "unit ID"))
    commands.add_parser("logout", help="revoke this terminal's API token")
    open_parser = commands.add_parser("open", help="ask a device for a session with one of "
                                                   "its apps and wait for the operator")
    open_parser.add_argument("device_id", type=identifier(DEVICE_ID, "device ID (lower case)"))
    open_parser.add_argument("app_id", type=identifier(APP_ID, "app ID"))
    open_parser.add_argument("--port", type=_port, default=0,
                             help="the local port on 127.0.0.1 (default: any free port)")
    join_parser = commands.add_parser("join", help="collect and serve a session asked for in "
                                                   "the portal for this terminal")
    join_parser.add_argument("request_id", type=identifier(REQUEST_ID, "request ID"))
    join_parser.add_argument("--port", type=_port, default=0,
                             help="the local port on 127.0.0.1 (default: any free port)")
    close_parser = commands.add_parser("close", help="end the session `open` holds with a "
                                                     "device")
    close_parser.add_argument("device_id", type=identifier(DEVICE_ID, "device ID (lower case)"))
    devices = commands.add_parser("devices", help="list the devices of your unit")
    devices.add_argument("--json", action="store_true", help="print the answer as JSON")
    listing = commands.add_parser("sessions", help="the session records of your unit")
    listing.add_argument("--from", dest="from_", metavar="WHEN",
                         help="requested at or after (ISO 8601, e.g. 2026-11-01)")
    listing.add_argument("--to", metavar="WHEN", help="requested before (ISO 8601)")
    listing.add_argument("--device", type=identifier(DEVICE_ID, "device ID (lower case)"))
    listing.add_argument("--user", type=identifier(USER_ID, "user ID (lower case)"))
    listing.add_argument("--json", action="store_true", help="print the answer as JSON")
    listing.add_argument("--collect", action="store_true",
                         help="first ask the unit's devices for the session reports the "
                              "manager lacks (S311)")
    reporting = commands.add_parser("report", help="your unit's session figures for a period "
                                                "(S318–S320)")
    reporting.add_argument("--from", dest="from_", metavar="WHEN",
                        help="first day (2026-11-01, in the unit's time zone) or an instant "
                             "with its offset; default: this month")
    reporting.add_argument("--to", metavar="WHEN", help="the day after the last (excluded)")
    reporting.add_argument("--by", choices=("device", "app", "user", "day"),
                        help="one row per device, app, user or day")
    reporting.add_argument("--csv", metavar="FILE", help="write the report as CSV to FILE "
                                                      "('-': standard output)")
    reporting.add_argument("--json", action="store_true", help="print the answer as JSON")
    reporting.add_argument("--mail", action="store_true",
                           help="e-mail the report to your unit's recipients now (unit admins)")
    schedule = commands.add_parser("report-schedule", help="when your unit's report is "
                                                           "e-mailed (changes: unit admins)")
    schedule_actions = schedule.add_subparsers(dest="action", required=True, metavar="ACTION")
    schedule_actions.add_parser("list", help="the unit's schedules")
    adding = schedule_actions.add_parser("add", help="add a schedule")
    when = adding.add_mutually_exclusive_group(required=True)
    when.add_argument("--daily", action="store_true", help="every day (the day before)")
    when.add_argument("--weekly", metavar="WEEKDAY", choices=WEEKDAY_NAMES,
                      help="every week on WEEKDAY (the seven days before)")
    when.add_argument("--monthly", metavar="DAY", type=_day_of_month,
                      help="every month on DAY, 1–28 (the month before)")
    adding.add_argument("--at", required=True, type=_clock_time_argument, metavar="HH:MM",
                        help="the time of day, in the unit's time zone")
    adding.add_argument("--by", choices=("device", "app", "user", "day"))
    removing = schedule_actions.add_parser("remove", help="remove a schedule")
    removing.add_argument("schedule_id", type=int)
    recipient = commands.add_parser("report-recipient", help="who gets your unit's report "
                                                             "by e-mail (changes: unit admins)")
    recipient_actions = recipient.add_subparsers(dest="action", required=True,
                                                 metavar="ACTION")
    recipient_actions.add_parser("list", help="the unit's recipients")
    for action in ("add", "remove"):
        recipient_actions.add_parser(action, help=f"{action} a recipient").add_argument(
            "address", type=identifier(MAIL_ADDRESS, "e-mail address"))
    maintenance.add_parsers(commands)
    administration.add_parsers(commands)
    one = commands.add_parser("session", help="one session's whole record")
    one.add_argument("request_id", type=identifier(REQUEST_ID, "request ID"))
    one.add_argument("--json", action="store_true", help="print the answer as JSON")

    return parser


def choose_unit(state, unit_id: str) -> None:
    """Make ``unit_id`` the unit commands act in, if the user belongs to it (a provider
    admin may pick any: the server checks that it exists)."""
    if not state.provider_admin and unit_id not in (state.units or []):
        raise CliError(text("not-your-unit", unit_id=unit_id,
                            units=", ".join(state.units or []) or "none"), EXIT_USAGE)
    state.unit_id = unit_id


async def _run_terminal(reactor, args: argparse.Namespace) -> list[str]:
    home = terminal_home()
    settings = load_settings(home, args.server, args.ca)
    state = load_state(home)

    def api_client() -> ApiClient:
        if state.token is None:
            raise CliError(text("not-logged-in"), EXIT_NOT_LOGGED_IN)
        return ApiClient(reactor, settings.server_url or state.server_url,
                         settings.ca_certificate, state.terminal_id, token=state.token,
                         timeout=args.timeout, user_id=state.user_id, unit_id=state.unit_id)

    if args.command == "close":
        return await close_session(reactor, args.device_id, api_client)

    if args.command == "login":
        if settings.server_url is None:
            raise CliError(text("no-server", path=home / "terminal.toml"), EXIT_USAGE)
        user_id = args.user
        if user_id is None:
            if not sys.stdin.isatty() or args.password_stdin:
                raise CliError("give your user ID with --user", EXIT_USAGE)
            user_id = input("User ID: ").strip().lower()
        password = read_password(args.password_stdin,
                                  text("password-prompt", user_id=user_id), False)
        client = ApiClient(reactor, settings.server_url, settings.ca_certificate,
                           state.terminal_id, timeout=args.timeout)
        answer = await client.post("/api/v1/login", {
            "user_id": user_id, "password": password, "terminal_id": state.terminal_id})
        try:
            state.token, state.expires_at_us = str(answer["token"]), int(answer["expires_at_us"])
        except (KeyError, ValueError, TypeError):
            raise CliError(f"the server at {settings.server_url} gave no token") from None
        state.server_url, state.user_id = settings.server_url, user_id
        memberships = answer.get("memberships") if isinstance(answer.get("memberships"),
                                                              list) else []
        state.units = [str(m.get("unit_id")) for m in memberships if isinstance(m, dict)]
        state.provider_admin = answer.get("provider_admin") is True
        state.unit_id = answer.get("unit_id") if isinstance(answer.get("unit_id"), str) else None
        if args.unit is not None:
            choose_unit(state, args.unit)
        save_state(home, state)
        lines = [text("logged-in", user_id=user_id, unit_id=state.unit_id or "none chosen",
                      terminal_id=state.terminal_id, expires_at=answer.get("expires_at"))]
        if state.unit_id is None:
            lines.append(text("choose-unit", units=", ".join(state.units) or "any"))
        return lines

    if args.command == "unit":
        if state.token is None:
            raise CliError(text("not-logged-in"), EXIT_NOT_LOGGED_IN)
        if args.unit_id is not None:
            choose_unit(state, args.unit_id)
            save_state(home, state)
        return [text("units", current=state.unit_id or "none chosen",
                     units=", ".join(state.units or []) or "none",
                     provider=" (provider admin: any unit)" if state.provider_admin else "")]

    if args.command == "passwd":
        def client_for(logged_in: bool) -> ApiClient:
            if logged_in:
                return api_client()
            if (settings.server_url or state.server_url) is None:
                raise CliError(text("no-server", path=home / "terminal.toml"), EXIT_USAGE)
            return ApiClient(reactor, settings.server_url or state.server_url,
                             settings.ca_certificate, state.terminal_id, timeout=args.timeout)

        return await administration.passwd(client_for, args)

    client = api_client()
    if args.command == "admin":
        return await administration.admin(client, args)
    if args.command == "logout":
        await client.post("/api/v1/logout", {})
        state.token = state.expires_at_us = None
        save_state(home, state)
        # Logging out ends no session: each `open` keeps its own until it is closed.
        running = sorted(p.stem for p in (home / "sessions").glob("*.json"))
        return [text("logged-out")] + [text("session-goes-on", device_id=device_id)
                                       for device_id in running]

    if args.command == "open":
        return await open_session(reactor, client, args.device_id, args.app_id, args.port)

    if args.command == "join":
        return await join_session(reactor, client, args.request_id, args.port)

    if args.command == "sessions":
        query = urlencode({name: value for name, value in (
            ("from", args.from_), ("to", args.to), ("device_id", args.device),
            ("user_id", args.user)) if value})
        lines = []
        if args.collect:
            collected = await client.post("/api/v1/sessions/collect", {})
            lines = [json.dumps(collected, indent=2)] if args.json else \
                format_collection(collected)
        answer = await client.get("/api/v1/sessions" + (f"?{query}" if query else ""))
        return lines + ([json.dumps(answer, indent=2)] if args.json
                        else format_sessions(answer))
    if args.command == "maintain":
        return await maintenance.maintain(reactor, client, args)
    if args.command == "jobs":
        return await maintenance.jobs(client, args)
    if args.command == "report-schedule":
        return await report_schedule(client, args)
    if args.command == "report-recipient":
        return await report_recipient(client, args)
    if args.command == "report" and args.mail:
        answer = await client.post("/api/v1/reports/send", {name: value for name, value in (
            ("from", args.from_), ("to", args.to), ("group_by", args.by)) if value})
        return [text("report-mailed", mailing_id=answer.get("mailing_id", "?"),
                     recipients=", ".join(map(str, answer.get("recipients") or [])))]
    if args.command == "report":
        query = urlencode({name: value for name, value in (
            ("from", args.from_), ("to", args.to), ("group_by", args.by)) if value})
        query = f"?{query}" if query else ""
        if args.csv:
            return await _download_csv(client, "/api/v1/reports/sessions.csv" + query, args.csv)
        answer = await client.get("/api/v1/reports/sessions" + query)
        return [json.dumps(answer, indent=2)] if args.json else format_report(answer)
    if args.command == "session":
        answer = await client.get(f"/api/v1/sessions/{args.request_id}")
        return [json.dumps(answer, indent=2)] if args.json else format_record(answer)

    answer = await client.get("/api/v1/devices")
    if args.json:
        return [json.dumps(answer, indent=2)]
    return format_devices(answer)


_OPEN_REFUSALS = {"device-not-found": EXIT_DEVICE_NOT_FOUND, "unknown-app": EXIT_UNKNOWN_APP,
                  "session-exists": EXIT_SESSION_EXISTS, "device-offline": EXIT_DEVICE_OFFLINE}
_OUTCOME_EXITS = {"refused": EXIT_REFUSED, "approval-timeout": EXIT_APPROVAL_TIMEOUT,
                  "device-offline": EXIT_DEVICE_OFFLINE, "expired": EXIT_EXPIRED}
POLL_INTERVAL = 1.0
POLL_GRACE = 30.0


def _clock_time(instant_us) -> str:
    return iso_from_us(int(instant_us)).replace("T", " ").rstrip("Z") if instant_us else "?"


async def open_session(reactor, client: ApiClient, device_id: str, app_id: str,
                       local_port: int = 0) -> list[str]:
    """S141, S201–S202: request a session, show progress, report the outcome."""
    try:
        accepted = await client.post("/api/v1/sessions",
                                     {"device_id": device_id, "app_id": app_id,
                                      "client": CLIENT_DESCRIPTION})
    except CliError as e:
        if e.code in _OPEN_REFUSALS:
            raise CliError(e.message, _OPEN_REFUSALS[e.code], code=e.code) from None
        raise
    request_id = str(accepted.get("request_id", ""))
    return await follow_request(reactor, client, request_id, device_id, app_id,
                                int(accepted.get("approval_deadline_us", 0)), None, local_port)


async def join_session(reactor, client: ApiClient, request_id: str,
                       local_port: int = 0) -> list[str]:
    """A session asked for in the portal for this terminal: wait for the operator as
    ``open`` does, collect the terminal token (once) and serve the session."""
    answer = await client.get(f"/api/v1/sessions/{request_id}")
    if answer.get("terminal_id") != client.terminal_id:
        raise CliError(text("join-other-terminal", request_id=request_id,
                            terminal_id=answer.get("terminal_id", "?")), EXIT_USAGE)
    device_id, app_id = str(answer.get("device_id", "")), str(answer.get("app_id", ""))
    if answer.get("state") == "approved" and "terminal_token" not in answer:
        raise CliError(text("join-collected", request_id=request_id), EXIT_USAGE)
    return await follow_request(reactor, client, request_id, device_id, app_id,
                                int(answer.get("approval_deadline_us", 0)), answer, local_port)


async def follow_request(reactor, client: ApiClient, request_id: str, device_id: str,
                         app_id: str, deadline_us: int, answer: dict | None,
                         local_port: int = 0) -> list[str]:
    """S142–S150, S201–S202: wait (Ctrl-C withdraws the request) until the operator has
    answered, then serve the approved session or report why not; ``answer``: a first
    poll's answer already in hand."""
    state = answer.get("state") if answer else None
    if state in (None, "pending", "allocating"):
        print(text("waiting", device_id=device_id, deadline=_clock_time(deadline_us)),
              flush=True)
    give_up = reactor.seconds() + max(0.0, deadline_us / 1e6 - reactor.seconds()) + POLL_GRACE
    countdown = Countdown(sys.stderr, device_id, deadline_us / 1e6, reactor.seconds)
    interrupted: Deferred = Deferred()

    def interrupt(signum, frame) -> None:
        reactor.callFromThread(lambda: interrupted.called or interrupted.callback(signum))

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            if answer is None:
                answer = await _or_interrupted(client.get(f"/api/v1/sessions/{request_id}"),
                                               interrupted)
            state = answer.get("state")
            if state not in ("pending", "allocating"):
                break
            countdown.show()
            if reactor.seconds() > give_up:
                raise CliError(text("approval-timeout", device_id=device_id),
                               EXIT_APPROVAL_TIMEOUT)
            await _or_interrupted(deferLater(reactor, POLL_INTERVAL, lambda: None), interrupted)
            answer = None
    except _Interrupted:
        countdown.close()
        await _cancel(client, request_id, device_id)
    finally:
        countdown.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    fields = {"device_id": device_id, "operator": answer.get("operator", "?"),
              "code": answer.get("end_reason", state)}
    if state == "approved":
        print(text("approved", session_id=answer.get("session_id"),
                   relay_url=answer.get("relay_url"),
                   join_deadline=_clock_time(answer.get("join_deadline_us")), **fields),
              flush=True)
        return await hold_session(reactor, client.ca_certificate, device_id,
                                  dict(answer, app_id=app_id), local_port)
    reason = answer.get("end_reason")
    if reason == "refused" and answer.get("end_detail") == "test-approver-not-allowed":
        raise CliError(text("refused-test-approver", **fields), EXIT_REFUSED)
    if reason in _OUTCOME_EXITS:
        raise CliError(text(reason, **fields), _OUTCOME_EXITS[reason])
    raise CliError(text("failed", **fields))


class Countdown:
    """The time left to the operator's deadline, redrawn in place on a terminal (a pipe
    gets only the waiting line printed before)."""

    def __init__(self, stream, device_id: str, deadline: float, now):
        self._stream = stream
        self._device_id = device_id
        self._deadline = deadline
        self._now = now
        self._drawn = False
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())

    def show(self) -> None:
        if not self.enabled:
            return
        left = max(0, int(self._deadline - self._now()))
        self._stream.write("\r\x1b[K" + text("waiting-countdown", device_id=self._device_id,
                                              left=f"{left // 60}:{left % 60:02d}"))
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False


class _Interrupted(Exception):
    """Ctrl-C (or SIGTERM) while waiting for the operator."""


async def _or_interrupted(work, interrupted: Deferred):
    """The result of ``work`` (a Deferred or coroutine), unless the user interrupts first
    (then ``work`` is cancelled)."""
    watch: Deferred = Deferred()
    if interrupted.called:
        watch.callback(None)
    else:
        interrupted.addCallback(lambda signum: (watch.called or watch.callback(signum),
                                                signum)[1])
    index, result = await race([ensureDeferred(work), watch])
    if index == 1:
        raise _Interrupted()
    return result


async def _cancel(client: ApiClient, request_id: str, device_id: str) -> None:
    """Tell the manager the request is withdrawn; the operator's card goes away."""
    try:
        answer = await client.delete(f"/api/v1/sessions/{request_id}")
    except CliError as e:
        raise CliError(text("cancel-failed", device_id=device_id, reason=e.message),
                       EXIT_INTERRUPTED) from None
    if answer.get("state") == "ended" and answer.get("end_reason") != "cancelled":
        raise CliError(text("cancel-too-late", device_id=device_id,
                            code=answer.get("end_reason")), EXIT_INTERRUPTED)
    raise CliError(text("cancelled", device_id=device_id), EXIT_INTERRUPTED)


async def hold_session(reactor, ca_certificate, device_id: str, answer: dict,
                       local_port: int = 0) -> list[str]:
    """S203–S214, S231–S243 and S261–S273: join the relay as the terminal, serve the
    session on the local port, hold it, end it."""
    session_id, app_id = str(answer["session_id"]), str(answer.get("app_id", ""))
    traffic = {"sent": 0, "received": 0}

    def send(message: bytes) -> None:
        traffic["sent"] += len(message)
        relay.send(message)

    def received(message: bytes) -> None:
        traffic["received"] += len(message)
        streams.message(message)

    streams = TerminalStreams(send, session_id, app_id)
    relay = RelayClient(reactor, str(answer["relay_url"]), "terminal", session_id,
                        str(answer["terminal_token"]), ca_certificate, received)
    try:
        await relay.connect()
    except RelayClosed as e:
        raise CliError(text("relay-refused", reason=str(e)), EXIT_SESSION_LOST) from None
    except Exception as e:
        raise CliError(text("relay-refused", reason=str(e) or type(e).__name__),
                       EXIT_UNREACHABLE) from None
    access = LocalAccess(session_label(device_id))
    site = LocalPortFactory(reactor, access, streams)
    try:
        listening = await TCP4ServerEndpoint(reactor, local_port,
                                             interface="127.0.0.1").listen(site)
    except CannotListenError as e:
        relay.end()
        raise CliError(text("local-port-busy", port=local_port, reason=str(e.socketError)),
                       EXIT_USAGE) from None
    access.port = listening.getHost().port
    marker = session_marker(terminal_home(), device_id)
    marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump({"pid": os.getpid(), "request_id": answer["request_id"],
                   "session_id": session_id, "app_id": app_id, "local_url": access.base_url,
                   "local_port": access.port, "access_header": ACCESS_HEADER.decode(),
                   "access_secret": access.secret}, out)
    print(text("session-open", device_id=device_id, session_id=session_id), flush=True)
    opened_at = reactor.seconds()
    print(text("local-browser", url=access.bootstrap_url), flush=True)
    print(text("local-script", url=access.base_url, header=ACCESS_HEADER.decode(),
               secret=access.secret), flush=True)

    def end_on_signal(signum, frame):
        reactor.callFromThread(relay.end)

    previous = {s: signal.signal(s, end_on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        ended = await relay.closed
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        streams.close()
        site.close_all()
        await listening.stopListening()
        marker.unlink(missing_ok=True)
    summary = {"device_id": device_id, "duration": spoken_duration(reactor.seconds() - opened_at),
               "sent": size_text(traffic["sent"]), "received": size_text(traffic["received"])}
    if ended.clean and ended.code == 1000:
        return [text("session-ended-after", **summary)]
    if ended.clean and ended.code == 4001:
        reason = str(ended.reason)
        if reason.startswith("ended-by-device"):
            return [text("session-ended-by-device-after", **summary)]
        if reason.endswith("(normal)"):  # its user ended it elsewhere
            return [text("session-ended-after", **summary)]
        raise CliError(text("session-ended-by-manager", device_id=device_id, reason=reason),
                       EXIT_SESSION_LOST)
    raise CliError(text("session-lost", device_id=device_id, reason=str(ended) or "dropped"),
                   EXIT_SESSION_LOST)


def spoken_duration(seconds: float) -> str:
    """``4 min 12 s``, ``1 h 3 min``, ``9 s``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def size_text(count: int) -> str:
    """``70.2 MB``, ``512 bytes`` (decimal units, as a transfer shows them)."""
    if count < 1000:
        return f"{count} bytes"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def session_marker(home: Path, device_id: str) -> Path:
    """Where a running `remotecomm open` says which session it holds (for `close`)."""
    return home / "sessions" / f"{device_id}.json"


async def close_session(reactor, device_id: str, api_client) -> list[str]:
    """`remotecomm close DEVICE`: ask the `open` holding that session to end it normally;
    when no `open` here holds it (it crashed, or runs elsewhere), end it through the
    manager (``POST /api/v1/sessions/{request_id}/end``)."""
    marker = session_marker(terminal_home(), device_id)
    request_id = None
    try:
        held = json.loads(marker.read_text())
        request_id = str(held.get("request_id") or "") or None
        os.kill(int(held["pid"]), signal.SIGINT)
    except (FileNotFoundError, ValueError, KeyError, TypeError, ProcessLookupError):
        marker.unlink(missing_ok=True)
        return await _end_through_the_manager(api_client(), device_id, request_id)
    print(text("close-sent", device_id=device_id), flush=True)
    for _ in range(150):
        if not marker.exists():
            return [text("session-ended", device_id=device_id)]
        await deferLater(reactor, 0.1, lambda: None)
    raise CliError(f"the session with {device_id} did not end within 15 s")


async def _end_through_the_manager(client: ApiClient, device_id: str,
                                   request_id: str | None) -> list[str]:
    if request_id is None:
        listed = await client.get(f"/api/v1/sessions?device_id={device_id}&state=open"
                                  f"&user_id={client.user_id}")
        mine = [s for s in listed.get("sessions") or []
                if s.get("terminal_id") == client.terminal_id]
        if not mine:
            raise CliError(text("no-open-session", device_id=device_id), EXIT_NO_SESSION)
        request_id = str(mine[0].get("request_id"))
    answer = await client.post(f"/api/v1/sessions/{request_id}/end", {})
    if "ending" in answer:
        return [text("end-requested", device_id=device_id)]
    return [text("session-ended-as", device_id=device_id,
                 reason=answer.get("end_reason") or answer.get("state"))]


def _duration(microseconds) -> str:
    if not isinstance(microseconds, int):
        return ""
    seconds = microseconds // 1_000_000
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def format_sessions(answer: dict) -> list[str]:
    """The unit's session records as a readable table (what devices report is shown as
    text, never interpreted)."""
    sessions = answer.get("sessions") or []
    if not sessions:
        return [text("no-sessions", unit_id=answer.get("unit_id", "?"))]
    rows = [("REQUEST", "REQUESTED (UTC)", "USER", "DEVICE", "APP", "STATE", "DURATION")]
    for record in sessions:
        state = str(record.get("state", "?"))
        if state == "ended":
            state = f"ended: {record.get('end_reason', '?')}"
        rows.append((str(record.get("request_id", "?")), _clock_time(
            record.get("requested_at_us")), str(record.get("user_id", "")),
            str(record.get("device_id", "")), str(record.get("app_id", "")), state,
            _duration(record.get("duration_us"))))
    lines = [text("sessions-header", unit_id=answer.get("unit_id", "?"))] + table(rows)
    if answer.get("next"):
        lines.append(text("sessions-more"))
    return lines


WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day_of_month(text_value: str) -> int:
    if not text_value.isdigit() or not 1 <= int(text_value) <= 28:
        raise argparse.ArgumentTypeError("a day of the month must be 1 to 28")
    return int(text_value)


def _clock_time_argument(text_value: str) -> str:
    hours, _, minutes = text_value.partition(":")
    if not (len(hours) == 2 and hours.isdigit() and len(minutes) == 2 and minutes.isdigit()
            and int(hours) < 24 and int(minutes) < 60):
        raise argparse.ArgumentTypeError("a time of day is HH:MM (00:00 to 23:59)")
    return text_value


async def report_schedule(client: ApiClient, args) -> list[str]:
    """`remotecomm report-schedule list|add|remove`."""
    if args.action == "add":
        body = {"at": args.at}
        if args.daily:
            body["frequency"] = "daily"
        elif args.weekly:
            body.update(frequency="weekly", weekday=args.weekly)
        else:
            body.update(frequency="monthly", day=args.monthly)
        if args.by:
            body["group_by"] = args.by
        answer = await client.post("/api/v1/reports/schedules", body)
        return [text("schedule-added", schedule_id=answer.get("schedule_id"),
                     description=answer.get("description"))]
    if args.action == "remove":
        await client.delete(f"/api/v1/reports/schedules/{args.schedule_id}")
        return [text("schedule-removed", schedule_id=args.schedule_id)]
    answer = await client.get("/api/v1/reports/schedules")
    schedules = answer.get("schedules") or []
    if not schedules:
        return [text("no-schedules", unit_id=answer.get("unit_id", "?"))]
    return table([("ID", "WHEN")] + [(str(s.get("schedule_id")), str(s.get("description")))
                                      for s in schedules])


async def report_recipient(client: ApiClient, args) -> list[str]:
    """`remotecomm report-recipient list|add|remove`."""
    if args.action == "add":
        await client.post("/api/v1/reports/recipients", {"address": args.address})
        return [text("recipient-added", address=args.address)]
    if args.action == "remove":
        await client.delete(f"/api/v1/reports/recipients/{quote(args.address)}")
        return [text("recipient-removed", address=args.address)]
    answer = await client.get("/api/v1/reports/recipients")
    return list(answer.get("recipients") or []) or [
        text("no-recipients", unit_id=answer.get("unit_id", "?"))]


async def _download_csv(client: ApiClient, path: str, target: str) -> list[str]:
    """Stream a CSV export into ``target`` (``-``: standard output); written to a partial
    file first, so a failed download leaves nothing half-written under the name."""
    if target == "-":
        await client.download(path, lambda chunk: sys.stdout.buffer.write(chunk))
        sys.stdout.buffer.flush()
        return []
    final = Path(target)
    partial = final.with_name(final.name + ".part")
    try:
        with partial.open("wb") as out:
            await client.download(path, out.write)
        partial.replace(final)
    except OSError as e:
        raise CliError(text("cannot-write", path=target, reason=e.strerror or str(e))) from None
    finally:
        partial.unlink(missing_ok=True)
    return [text("csv-written", path=target)]


def format_report(report: dict) -> list[str]:
    """A unit's report as a readable table: one row per group, then the total."""
    group_by = report.get("group_by")
    lines = [text("report-header", unit_id=report.get("unit_id", "?"),
                  start=str(report.get("from", "?"))[:10], end=str(report.get("to", "?"))[:10],
                  zone=report.get("time_zone", "?"),
                  by=f", by {group_by}" if group_by else "")]
    rows = [((group_by or "unit").upper(), "SESSIONS", "RAN", "DURATION", "AVERAGE",
             "BYTES TO DEVICE", "BYTES FROM DEVICE", "ENDS")]

    def row(key: str, figures: dict) -> tuple[str, ...]:
        ends = ", ".join(f"{reason} {count}" for reason, count in
                         sorted((figures.get("ends") or {}).items()))
        return (key, str(figures.get("sessions", 0)), str(figures.get("sessions_run", 0)),
                _duration(figures.get("duration_us")),
                _duration(figures.get("average_duration_us")),
                str(figures.get("bytes_to_device", 0)), str(figures.get("bytes_from_device", 0)),
                ends)

    for group in report.get("groups") or []:
        rows.append(row(str(group.get("key", "?")), group))
    rows.append(row("TOTAL" if group_by else str(report.get("unit_id", "?")),
                    report.get("totals") or {}))
    lines += table(rows)
    still_open = report.get("open_sessions") or []
    if still_open:
        lines.append(text("report-open", count=len(still_open)))
    if report.get("missing_device_info"):
        lines.append(text("report-missing-device-info", count=report["missing_device_info"]))
    return lines


def format_collection(outcome: dict) -> list[str]:
    """What a collection did, in a line or three."""
    lines = [text("collected", asked=len(outcome.get("asked_devices") or []),
                  collected=outcome.get("reports_collected", 0),
                  missing=outcome.get("still_missing", 0))]
    for key, message in (("offline_devices", "collect-offline"),
                         ("silent_devices", "collect-silent")):
        if outcome.get(key):
            lines.append(text(message, devices=", ".join(map(str, outcome[key]))))
    return lines


def format_record(record: dict) -> list[str]:
    """One session's record, field by field, then its two sides."""
    lines = []
    for label, key in (("Request", "request_id"), ("State", "state"),
                       ("End reason", "end_reason"), ("End detail", "end_detail"),
                       ("Unit", "unit_id"), ("User", "user_id"), ("Terminal", "terminal_id"),
                       ("Device", "device_id"), ("App", "app_id"), ("Operator", "operator"),
                       ("Relay node", "relay_node")):
        if record.get(key) is not None:
            lines.append(f"{label + ':':<13} {record[key]}")
    for label, key in (("Requested", "requested_at_us"), ("Decided", "decided_at_us"),
                       ("Started", "started_at_us"), ("Finished", "finished_at_us")):
        if record.get(key) is not None:
            lines.append(f"{label + ':':<13} {_clock_time(record[key])} UTC")
    if record.get("duration_us") is not None:
        lines.append(f"{'Duration:':<13} {_duration(record['duration_us'])}")
    client = record.get("terminal") or {}
    if any(client.values()):
        lines.append(f"{'Client:':<13} {client.get('client_name') or '?'} "
                     f"{client.get('client_version') or ''} on {client.get('os_name') or '?'} "
                     f"{client.get('os_version') or ''}".rstrip())
    for side, connection in (record.get("connections") or {}).items():
        lines.append(f"{side.title() + ' side:':<13} {connection.get('party_id')}, "
                     f"{_clock_time(connection.get('started_at_us'))} to "
                     f"{_clock_time(connection.get('ended_at_us'))}, "
                     f"{connection.get('end_reason') or 'open'}, "
                     f"{connection.get('bytes_from_side', 0)} B sent, "
                     f"{connection.get('bytes_to_side', 0)} B received"
                     + (f", {connection['refused_frames']} frame(s) refused"
                        if connection.get("refused_frames") else "")
                     + (f" ({connection['end_detail']})" if connection.get("end_detail")
                        else "")
                     + _late_relay_log(connection.get("late_relay_log")))
    device = record.get("device")
    if device:
        lines.append(f"{'Device saw:':<13} {_device_saw(device)}")
    return lines


def _late_relay_log(late: dict | None) -> str:
    """The relay's own end log of a side the manager ended for it (it came later)."""
    if not late:
        return ""
    return (f"; the relay's own log came later: {late.get('end_reason')} at "
            f"{_clock_time(late.get('ended_at_us'))}, {late.get('bytes_from_side', 0)} B sent, "
            f"{late.get('bytes_to_side', 0)} B received")


def _device_saw(device: dict) -> str:
    """What the device reported of a session, in one line (its own clock's times)."""
    versions = ", ".join(f"{label} {device[key]}" for label, key in (
        ("app", "app_version"), ("agent", "agent_version"), ("firmware", "firmware_version"))
        if device.get(key))
    ended = _clock_time(device["ended_at_us"]) if device.get("ended_at_us") else \
        "an end it did not see"
    moved = (f"{device['bytes_to_device']} B in, {device['bytes_from_device']} B out"
             if device.get("bytes_to_device") is not None else "bytes not known")
    errors = f", {device['errors']} error(s)" if device.get("errors") else ""
    return (f"operator {device.get('operator')}, {versions}; "
            f"{_clock_time(device.get('started_at_us'))} to {ended} (its clock), "
            f"{device.get('end_reason')}, {moved}{errors}; "
            f"received {_clock_time(device.get('received_at_us'))} UTC")


def format_devices(answer: dict) -> list[str]:
    """The devices answer as a readable table."""
    devices = answer.get("devices") or []
    unit_id = answer.get("unit_id", "?")
    if not devices:
        return [text("no-devices", unit_id=unit_id)]
    rows = [("DEVICE", "NAME", "MODEL", "STATE", "LAST SEEN")]
    for device in devices:
        online = device.get("online")
        rows.append((
            str(device.get("device_id", "?")),
            str(device.get("name", "")),
            str(device.get("model", "")),
            text("online") if online else
            text("unknown") if device.get("state") == "unknown" else text("offline"),
            text("now") if online else local_time(device.get("last_seen_at")),
        ))
    return [text("devices-header", unit_id=unit_id)] + table(rows)


def local_time(iso: str | None) -> str:
    """An ISO 8601 UTC instant in this computer's time zone, with its offset
    (``2026-12-01 06:40 +0100``); ``never`` without one."""
    if not iso:
        return text("never")
    try:
        moment = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M %z")


def main(argv: list[str] | None = None) -> None:
    """The technician's command (``remotecomm`` hands ``admin`` to remotecomm-admin)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    report("remotecomm", lambda: _run_async(args))


def _run_async(args: argparse.Namespace) -> list[str]:
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    outcome: dict = {}

    def finish(result):
        outcome["result"] = result
        reactor.stop()

    def start():
        ensureDeferred(_run_terminal(reactor, args)).addBoth(finish)

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=True)
    if "result" not in outcome:  # the reactor stopped first: Ctrl-C outside a wait
        raise CliError(text("interrupted"), EXIT_INTERRUPTED)
    result = outcome["result"]
    if hasattr(result, "value"):  # a Failure
        if isinstance(result.value, CliError):
            raise result.value
        raise CliError(f"unexpected error: {result.getErrorMessage()}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

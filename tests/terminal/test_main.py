"""Tests for remotecomm.terminal.main and remotecomm.admin.main: arguments, the devices table,
terminal files."""

import io
import os
import time
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.admin import main as admin
from remotecomm.command_line import EXIT_USAGE, CliError
from remotecomm.terminal import main as cli
from remotecomm.terminal.client import ApiClient
from remotecomm.terminal.settings import TerminalState, load_settings, load_state, save_state


class ArgumentTests(SynchronousTestCase):
    """Bad arguments end with exit code 2 and a message, before anything runs."""

    def exit_code(self, argv):
        stderr = io.StringIO()
        self.patch(cli.sys, "stderr", stderr)
        with self.assertRaises(SystemExit) as e:
            if argv[:1] == ["admin"]:
                admin.build_parser().parse_args(argv[1:])
            else:
                cli.build_parser().parse_args(argv)
        return e.exception.code, stderr.getvalue()

    def test_no_command(self):
        """A bare `remotecomm` is a usage error."""
        self.assertEqual(self.exit_code([])[0], 2)

    def test_invalid_ids_are_refused(self):
        """IDs are checked against their patterns."""
        for argv in (["admin", "add-unit", "ACME", "--name", "x", "--time-zone", "UTC"],
                     ["admin", "add-user", "al ice", "--unit", "acme"],
                     ["admin", "add-device", "mfp/1", "--unit", "acme"]):
            code, message = self.exit_code(argv)
            self.assertEqual(code, 2, argv)
            self.assertIn("is not a valid", message)

    def test_report_grouping_is_one_of_four(self):
        self.assertEqual(self.exit_code(["report", "--by", "week"])[0], 2)

    def test_report_schedules_and_recipients_are_checked(self):
        """Weekday names, HH:MM, days 1–28, one frequency, e-mail addresses."""
        for argv in (["report-schedule", "add", "--weekly", "funday", "--at", "06:00"],
                     ["report-schedule", "add", "--daily", "--at", "6:00"],
                     ["report-schedule", "add", "--daily", "--at", "24:00"],
                     ["report-schedule", "add", "--monthly", "29", "--at", "06:00"],
                     ["report-schedule", "add", "--daily", "--weekly", "monday", "--at",
                      "06:00"],
                     ["report-schedule", "add", "--at", "06:00"],
                     ["report-recipient", "add", "not an address"],
                     ["report-recipient", "add", "a@b.c\nBcc: x@y.z"]):
            self.assertEqual(self.exit_code(argv)[0], 2, argv)
        args = cli.build_parser().parse_args(["report-schedule", "add", "--weekly", "monday",
                                              "--at", "06:30", "--by", "device"])
        self.assertEqual((args.weekly, args.at, args.by), ("monday", "06:30", "device"))

    def test_open_checks_device_and_app_ids(self):
        """`remotecomm open` refuses malformed IDs before calling the server."""
        for argv in (["open", "MFP", "web-server"], ["open", "mfp-1", "Web Server"],
                     ["open", "mfp-1"]):
            self.assertEqual(self.exit_code(argv)[0], 2, argv)

    def test_unknown_role_is_refused(self):
        """Roles are a fixed list."""
        self.assertEqual(self.exit_code(["admin", "add-user", "bob", "--unit", "acme",
                                         "--role", "root"])[0], 2)

    def test_timeout_is_bounded(self):
        """A zero or absurd timeout is refused."""
        for value in ("0", "-1", "1e9", "soon"):
            self.assertEqual(self.exit_code(["--timeout", value, "devices"])[0], 2, value)

    def test_admin_without_config_exits_2(self):
        """Admin commands need the server's config."""
        self.patch(os, "environ", {k: v for k, v in os.environ.items()
                                   if k != "REMOTECOMM_CONFIG"})
        stderr = io.StringIO()
        self.patch(cli.sys, "stderr", stderr)
        with self.assertRaises(SystemExit) as e:
            admin.main(["--config", "", "init"])
        self.assertEqual(e.exception.code, 2)
        self.assertEqual(stderr.getvalue().count("\n"), 1)

    def test_unknown_time_zone_exits_2(self):
        """A time zone that does not exist is a usage error with a hint."""
        folder = Path(self.mktemp())
        folder.mkdir()
        config = folder / "rc.toml"
        config.write_text(f"[server]\ndata_dir = '{folder}/data'\n")
        stderr = io.StringIO()
        self.patch(cli.sys, "stderr", stderr)
        with self.assertRaises(SystemExit) as e:
            admin.main(["--config", str(config), "add-unit", "acme", "--name", "A",
                        "--time-zone", "Mars/Olympus"])
        self.assertEqual(e.exception.code, 2)
        self.assertIn("IANA", stderr.getvalue())


class DeviceTableTests(SynchronousTestCase):
    """`remotecomm devices` prints a readable table."""

    def test_table(self):
        """Columns line up; an online device is seen "now", an offline one when it was
        last (in this computer's zone, with the offset), or never."""
        before = os.environ.get("TZ")
        os.environ["TZ"] = "Europe/Berlin"
        time.tzset()

        def restore():
            if before is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = before
            time.tzset()

        self.addCleanup(restore)
        lines = cli.format_devices({"unit_id": "acme", "devices": [
            {"device_id": "mfp-1", "name": "Front desk", "model": "MFP 9000", "online": True,
             "last_seen_at": "2026-11-26T12:00:00Z"},
            {"device_id": "mfp-22", "name": "Back", "model": "M", "online": False,
             "last_seen_at": None},
            {"device_id": "mfp-3", "name": "Lab", "model": "M", "online": False,
             "last_seen_at": "2026-11-26T12:00:00Z"},
        ]})
        self.assertEqual(lines, [
            "Devices of unit acme:",
            "DEVICE  NAME        MODEL     STATE    LAST SEEN",
            "mfp-1   Front desk  MFP 9000  online   now",
            "mfp-22  Back        M         offline  never",
            "mfp-3   Lab         M         offline  2026-11-26 13:00 +0100",
        ])

    def test_empty_unit(self):
        """No devices is said in words."""
        self.assertEqual(cli.format_devices({"unit_id": "acme", "devices": []}),
                         ["No devices in unit acme."])


class TerminalFileTests(SynchronousTestCase):
    """The terminal ID is generated once; the state file is private."""

    def setUp(self):
        self.home = Path(self.mktemp())
        self.patch(os, "environ", {k: v for k, v in os.environ.items()
                                   if not k.startswith("REMOTECOMM_")})

    def test_terminal_id_is_generated_once(self):
        """The first state gets a new ID; once saved, it stays."""
        state = load_state(self.home)
        self.assertRegex(state.terminal_id, r"^t-[0-9a-f]{32}$")
        self.assertNotEqual(state.terminal_id, load_state(self.home).terminal_id)
        save_state(self.home, state)
        self.assertEqual(load_state(self.home).terminal_id, state.terminal_id)

    def test_state_file_is_owner_only(self):
        """The file that holds the API token is mode 0600."""
        state = load_state(self.home)
        state.token = "secret"
        save_state(self.home, state)
        self.assertEqual((self.home / "state.json").stat().st_mode & 0o777, 0o600)

    def test_corrupt_state_is_a_clear_error(self):
        """A damaged state file says what to do."""
        self.home.mkdir()
        (self.home / "state.json").write_text("{nope")
        with self.assertRaises(CliError) as e:
            load_state(self.home)
        self.assertIn("remove it and log in again", e.exception.message)

    def test_settings_precedence(self):
        """Command line beats environment beats terminal.toml."""
        self.home.mkdir()
        (self.home / "terminal.toml").write_text(
            "[terminal]\nserver_url = 'https://file.test:1'\nca_certificate = 'ca.pem'\n")
        settings = load_settings(self.home, None, None)
        self.assertEqual(settings.server_url, "https://file.test:1")
        self.assertEqual(settings.ca_certificate, self.home.absolute() / "ca.pem")
        os.environ["REMOTECOMM_SERVER"] = "https://env.test:2/"
        self.assertEqual(load_settings(self.home, None, None).server_url, "https://env.test:2")
        self.assertEqual(load_settings(self.home, "https://flag.test:3", None).server_url,
                         "https://flag.test:3")

    def test_bad_server_url_exits_2(self):
        """A server URL that is not http(s)://host is a usage error."""
        with self.assertRaises(CliError) as e:
            load_settings(self.home, "ftp://x", None)
        self.assertEqual(e.exception.exit_code, 2)

    def test_bad_terminal_toml_exits_2(self):
        """An unknown key in terminal.toml is a usage error naming it."""
        self.home.mkdir()
        (self.home / "terminal.toml").write_text("[terminal]\nserver = 'x'\n")
        with self.assertRaises(CliError) as e:
            load_settings(self.home, None, None)
        self.assertEqual(e.exception.exit_code, 2)
        self.assertIn("server", e.exception.message)


class CloseTests(SynchronousTestCase):
    """`remotecomm close` without a session to close."""

    def close(self, client):
        from twisted.internet.defer import Deferred
        from twisted.internet.task import Clock
        home = Path(self.mktemp())
        self.patch(os, "environ", dict(os.environ, REMOTECOMM_HOME=str(home)))
        return Deferred.fromCoroutine(cli.close_session(Clock(), "mfp-1", lambda: client))

    def test_no_open_session_exits_18(self):
        """Nothing to close, here or at the manager: a clear message and exit code 18."""
        failure = self.failureResultOf(self.close(FakeApi({"sessions": []})), CliError)
        self.assertEqual((failure.value.exit_code, failure.value.message),
                         (18, "no open session with mfp-1 on this terminal"))

    def test_without_a_local_open_the_manager_ends_it(self):
        """No `open` holds the session here: close asks the manager to end it."""
        api = FakeApi({"sessions": [{"request_id": "Q" * 22, "terminal_id": "t-other"},
                                    {"request_id": "R" * 22,
                                     "terminal_id": FakeApi.terminal_id}]},
                      {"state": "active", "ending": "normal"})
        lines = self.successResultOf(self.close(api))
        self.assertEqual(api.calls, [("GET", "/api/v1/sessions?device_id=mfp-1&state=open"
                                             "&user_id=alice"),
                                     ("POST", "/api/v1/sessions/" + "R" * 22 + "/end")])
        self.assertIn("asked its relay to end it", lines[0])


class FakeApi:
    """The manager's REST API as `close` uses it."""

    terminal_id = "t-" + "0" * 32
    user_id = "alice"

    def __init__(self, listed, ended=None):
        self.listed, self.ended, self.calls = listed, ended, []

    async def get(self, path):
        self.calls.append(("GET", path))
        return self.listed

    async def post(self, path, body):
        self.calls.append(("POST", path))
        return self.ended


class RecordTableTests(SynchronousTestCase):
    """`remotecomm sessions` and `remotecomm session` print readable text."""

    RECORD = {"request_id": "R" * 22, "state": "ended", "end_reason": "ended-by-device",
              "unit_id": "acme", "user_id": "alice", "terminal_id": "t-" + "0" * 32,
              "device_id": "mfp-1", "app_id": "web-server", "operator": "olga",
              "requested_at_us": 1_800_000_000_000_000,
              "started_at_us": 1_800_000_001_000_000, "finished_at_us": 1_800_003_662_000_000,
              "duration_us": 3_661_000_000,
              "terminal": {"client_name": "remotecomm-cli", "client_version": "0.1.0",
                           "os_name": "Linux", "os_version": "6.1"},
              "connections": {"device": {"party_id": "mfp-1",
                                         "started_at_us": 1_800_000_001_000_000,
                                         "ended_at_us": 1_800_003_662_000_000,
                                         "end_reason": "ended-by-device",
                                         "bytes_from_side": 10, "bytes_to_side": 20}}}

    def test_the_table(self):
        lines = cli.format_sessions({"unit_id": "acme", "sessions": [self.RECORD]})
        self.assertIn("Sessions of unit acme", lines[0])
        self.assertIn("ended: ended-by-device", lines[2])
        self.assertIn("1:01:01", lines[2])
        self.assertEqual(cli.format_sessions({"unit_id": "acme", "sessions": []}),
                         ["No session records in unit acme for this query."])

    def test_one_record(self):
        text = "\n".join(cli.format_record(self.RECORD))
        for part in ("Operator:     olga", "Duration:     1:01:01",
                     "Client:       remotecomm-cli 0.1.0 on Linux 6.1",
                     "Device side:  mfp-1", "10 B sent, 20 B received"):
            self.assertIn(part, text)

    def test_what_the_device_and_the_relay_said_of_errors(self):
        """Refused frames and the relay's words per side; the device's own view, and an end
        it did not see."""
        record = dict(self.RECORD, connections={"terminal": {
            "party_id": "t-1", "end_reason": "error", "refused_frames": 1,
            "end_detail": "bad frame: unknown kind", "bytes_from_side": 0,
            "bytes_to_side": 0}},
            device={"operator": "olga", "app_version": "httpd/2", "agent_version": "0.9",
                    "firmware_version": "4.2.1", "started_at_us": 1_800_000_001_000_000,
                    "end_reason": "agent-stopped", "received_at_us": 1_800_000_100_000_000})
        text = "\n".join(cli.format_record(record))
        for part in ("1 frame(s) refused (bad frame: unknown kind)",
                     "Device saw:   operator olga, app httpd/2, agent 0.9, firmware 4.2.1",
                     "to an end it did not see (its clock), agent-stopped, bytes not known"):
            self.assertIn(part, text)

    def test_a_side_the_manager_ended_for_a_lost_relay_and_the_relays_late_log(self):
        record = dict(self.RECORD, connections={"device": {
            "party_id": "mfp-1", "end_reason": "relay-lost", "bytes_from_side": 700,
            "bytes_to_side": 300, "end_written_by": "manager",
            "end_detail": "written by the manager: relay node relay-b went silent",
            "late_relay_log": {"ended_at_us": 1_800_000_040_000_000,
                               "end_reason": "relay-restart", "bytes_from_side": 900,
                               "bytes_to_side": 400}}})
        text = "\n".join(cli.format_record(record))
        self.assertIn("relay-lost, 700 B sent, 300 B received (written by the manager: relay "
                      "node relay-b went silent); the relay's own log came later: "
                      "relay-restart at ", text)
        self.assertIn(", 900 B sent, 400 B received", text)

    def test_a_collection_says_who_was_offline(self):
        lines = cli.format_collection({"asked_devices": ["mfp-1"], "reports_collected": 2,
                                       "still_missing": 1, "offline_devices": ["mfp-2"],
                                       "silent_devices": []})
        self.assertEqual(lines, [
            "Asked 1 device(s) for what they kept: 2 report(s) collected, 1 still missing.",
            "Offline now, asked again when they come back: mfp-2."])


class ReportOutputTests(SynchronousTestCase):
    """`remotecomm report` prints a table, or writes the CSV the server sends."""

    REPORT = {"unit_id": "acme", "time_zone": "Europe/Berlin",
              "from": "2026-10-01T00:00:00+02:00", "to": "2026-11-01T00:00:00+01:00",
              "group_by": "device",
              "groups": [{"key": "mfp-1", "sessions": 3, "sessions_run": 2,
                          "duration_us": 601_000_000, "average_duration_us": 300_500_000,
                          "bytes_to_device": 101, "bytes_from_device": 1002,
                          "ends": {"normal": 2, "refused": 1}}],
              "totals": {"sessions": 3, "sessions_run": 2, "duration_us": 601_000_000,
                         "average_duration_us": 300_500_000, "bytes_to_device": 101,
                         "bytes_from_device": 1002, "ends": {"normal": 2, "refused": 1}},
              "open_sessions": [{"request_id": "R" * 22}], "missing_device_info": 2}

    def test_the_table(self):
        lines = cli.format_report(self.REPORT)
        self.assertEqual(lines[0], "Sessions of unit acme from 2026-10-01 to 2026-11-01 "
                                   "(Europe/Berlin), by device:")
        self.assertTrue(lines[1].startswith("DEVICE  SESSIONS  RAN  DURATION  AVERAGE"))
        self.assertIn("mfp-1   3         2    0:10:01   0:05:00", lines[2])
        self.assertIn("normal 2, refused 1", lines[2])
        self.assertTrue(lines[3].startswith("TOTAL"))
        self.assertIn("1 session(s) of the period still open", lines[4])
        self.assertIn("2 session(s) without the device's information", lines[5])

    def test_csv_goes_to_the_file_whole_or_not_at_all(self):
        target = Path(self.mktemp())

        class Client:
            def __init__(self, fail):
                self.fail = fail

            async def download(self, path, write):
                write(b"from,to\r\n")
                if self.fail:
                    raise cli.CliError("broken off")
                write(b"a,b\r\n")

        lines = self.successResultOf(Deferred.fromCoroutine(
            cli._download_csv(Client(False), "/x", str(target))))
        self.assertEqual((lines, target.read_bytes()),
                         ([f"Wrote {target}."], b"from,to\r\na,b\r\n"))
        other = Path(self.mktemp())
        failure = self.failureResultOf(Deferred.fromCoroutine(
            cli._download_csv(Client(True), "/x", str(other))), cli.CliError)
        self.assertIn("broken off", str(failure.value))
        self.assertEqual(list(other.parent.glob(other.name + "*")), [])


class UnitChoiceTests(SynchronousTestCase):
    """The unit commands act in: one of the user's, remembered (any, for a provider admin)."""

    def test_only_a_unit_of_ones_own_can_be_chosen(self):
        state = TerminalState(terminal_id="t-" + "0" * 32, units=["acme", "globex"])
        cli.choose_unit(state, "globex")
        self.assertEqual(state.unit_id, "globex")
        with self.assertRaises(CliError) as e:
            cli.choose_unit(state, "initech")
        self.assertEqual(e.exception.exit_code, EXIT_USAGE)
        self.assertEqual(state.unit_id, "globex")
        state.provider_admin = True
        cli.choose_unit(state, "initech")
        self.assertEqual(state.unit_id, "initech")

    def test_the_client_names_the_unit_in_every_call(self):
        client = ApiClient(None, "https://m", None, "t-" + "0" * 32, token="x" * 43,
                           unit_id="acme")
        self.assertEqual(client._headers()[b"x-remotecomm-unit"], [b"acme"])
        client.unit_id = None
        self.assertNotIn(b"x-remotecomm-unit", client._headers())


class AdminDispatchTests(SynchronousTestCase):
    """`remotecomm admin …`: bootstrapping on the server host, the rest over the API."""

    def test_local_commands_go_to_the_server_hosts_tool(self):
        from remotecomm import __main__ as dispatcher
        from remotecomm.terminal.admin import API_COMMANDS, LOCAL_COMMANDS
        self.assertEqual(dispatcher._LOCAL, LOCAL_COMMANDS)
        for argv, local in ((["init"], True), (["--config", "x.toml", "init"], True),
                            (["add-user", "bob", "--unit", "acme"], True),
                            (["users"], False), (["user-disable", "bob"], False),
                            (["audit", "--kind", "login-failed"], False)):
            self.assertEqual(dispatcher._is_local(argv), local, argv)
        self.assertEqual(set(API_COMMANDS) & set(LOCAL_COMMANDS), set())
        parsed = cli.build_parser().parse_args(["admin", "user-role", "bob", "unit-admin"])
        self.assertEqual((parsed.admin_command, parsed.role), ("user-role", "unit-admin"))


class SessionWordsTests(SynchronousTestCase):
    """What `open` says while waiting and at the end, as people read it."""

    def test_durations_and_sizes(self):
        self.assertEqual([cli.spoken_duration(s) for s in (9.7, 252, 3780)],
                         ["9 s", "4 min 12 s", "1 h 3 min"])
        self.assertEqual([cli.size_text(n) for n in (512, 70_200_000, 1_500)],
                         ["512 bytes", "70.2 MB", "1.5 kB"])

    def test_the_countdown_redraws_on_a_terminal_only(self):
        class Terminal(io.StringIO):
            def isatty(self):
                return True

        now = [100.0]
        screen = Terminal()
        countdown = cli.Countdown(screen, "mfp-1", 202.0, lambda: now[0])
        countdown.show()
        now[0] = 161.0
        countdown.show()
        countdown.close()
        drawn = screen.getvalue().split("\r\x1b[K")
        self.assertIn("1:42 left", drawn[1])
        self.assertIn("0:41 left", drawn[2])
        pipe = io.StringIO()
        cli.Countdown(pipe, "mfp-1", 202.0, lambda: 100.0).show()
        self.assertEqual(pipe.getvalue(), "")

"""End to end: a unit's report by e-mail through a real SMTP server (aiosmtpd, STARTTLS and
AUTH required, on 127.0.0.1), sent now and by a schedule that came due while the manager
was down -- sent once when it came back, not again after another restart."""

import json
import sqlite3
import time
from email import message_from_bytes, policy
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.testing.http import http_client
from remotecomm.testing.processes import free_port, sleep
from remotecomm.testing.servers import ServerSetup
from remotecomm.testing.smtp import SmtpServer


class ReportMailTests(TestCase):
    """The manager, an SMTP server, and a unit admin's terminal."""

    timeout = 30

    async def setUp(self):
        folder = Path(self.mktemp()).absolute()
        self.smtp = SmtpServer(reactor, folder / "smtp", free_port())
        self.addCleanup(self.smtp.stop)
        await self.smtp.start()
        password_file = folder / "smtp-password"
        folder.mkdir(parents=True, exist_ok=True)
        password_file.write_text(self.smtp.password + "\n")
        password_file.chmod(0o600)
        self.setup = ServerSetup(reactor, folder / "server", extra_config=(
            "[mail]\nenabled = true\n"
            f"smtp_host = '127.0.0.1'\nsmtp_port = {self.smtp.port}\n"
            f"username = '{self.smtp.user}'\npassword_file = '{password_file}'\n"
            f"ca_certificate = '{self.smtp.ca}'\nfrom_address = 'reports@rc.test'\n"
            "send_grace = '0s'\ntimeout = '5s'\n"))
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["adam:unit-admin"], "devices": []}})
        await self.setup.start()
        await self.setup.login("adam")
        self.database = self.setup.folder / "data" / "manager.sqlite3"

    def mailings(self) -> list[dict]:
        with sqlite3.connect(self.database) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute("SELECT * FROM report_mailings")]

    async def test_sent_now_and_by_a_schedule_missed_during_downtime(self):
        code, output = await self.setup.cli("report-recipient", "add", "ops@acme.test")
        self.assertEqual(code, 0, output)
        code, output = await self.setup.cli("report", "--mail", "--by", "day",
                                            "--from", "2026-11-01", "--to", "2026-11-08")
        self.assertEqual(code, 0, output)
        self.assertIn("Report queued for e-mail", output)
        [(envelope, raw)] = await self.smtp.wait_for_messages(1)
        self.assertEqual(envelope, {"mail_from": "reports@rc.test",
                                    "rcpt_tos": ["ops@acme.test"], "tls": True,
                                    "authenticated": True})
        message = message_from_bytes(raw, policy=policy.default)
        self.assertEqual(message["Subject"].strip(),
                         "Remote sessions of Acme: 2026-11-01 to 2026-11-08")
        self.assertIn("Sessions:", message.get_body(("plain",)).get_content())
        self.assertIn("<table>", message.get_body(("html",)).get_content())
        [attachment] = list(message.iter_attachments())
        self.assertEqual(attachment.get_filename(), "sessions-acme-2026-11-01.csv")
        state = json.loads((self.setup.terminal_home / "state.json").read_text())
        response = await http_client(reactor, self.setup.ca).get(
            self.setup.url + "/api/v1/reports/sessions.csv?group_by=day&from=2026-11-01"
                             "&to=2026-11-08",
            headers={"Authorization": f"Bearer {state['token']}",
                     "X-Remotecomm-Terminal": state["terminal_id"]})
        self.assertEqual(attachment.get_content().encode(), await response.content())
        self.assertEqual(len(attachment.get_content().splitlines()), 1 + 7 + 1)

        # A daily schedule came due while the manager was down: sent once when it is back.
        await self.setup.server.stop()
        with sqlite3.connect(self.database) as db:
            db.execute("INSERT INTO report_schedules (unit_id, frequency, at_time, created_us, "
                       "created_by) VALUES ('acme', 'daily', '00:00', ?, 'adam')",
                       (int((time.time() - 2 * 86400) * 1_000_000),))
        await self.setup.start()
        messages = await self.smtp.wait_for_messages(2)
        scheduled = message_from_bytes(messages[1][1], policy=policy.default)
        self.assertIn("Remote sessions of Acme", scheduled["Subject"])
        await self.setup.server.stop()
        await self.setup.start()
        await sleep(reactor, 2)  # the scheduler looks at start: nothing is due again
        self.assertEqual(len(self.smtp.messages()), 2)
        self.assertEqual(sorted((m["schedule_id"] is not None, m["state"])
                                for m in self.mailings()),
                         [(False, "sent"), (True, "sent")])

"""Tests for remotecomm.reports.mail: the message, and the outbox (now, scheduled, retried)."""

from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.reports.csv_export import report_csv
from remotecomm.reports.mail import RETRY_DELAYS, ReportMailer, compose
from remotecomm.reports.periods import period, zone
from remotecomm.store.accounts import insert_unit
from remotecomm.store.audit import audit_records
from remotecomm.store.mailings import add_recipient, add_schedule, mailings_of
from remotecomm.testing.fakes import migrated_inline_store

S = 1_000_000
REPORT = {"unit_id": "acme", "time_zone": "Europe/Berlin",
          "from": "2026-10-01T00:00:00+02:00", "to": "2026-11-01T00:00:00+01:00",
          "group_by": "device",
          "totals": {"sessions": 2, "sessions_run": 1, "duration_us": 61 * S,
                     "average_duration_us": 61 * S, "bytes_to_device": 5,
                     "bytes_from_device": 7, "ends": {"normal": 1, "refused": 1}},
          "groups": [{"key": "<mfp-1>", "sessions": 2, "sessions_run": 1,
                      "duration_us": 61 * S, "average_duration_us": 61 * S,
                      "bytes_to_device": 5, "bytes_from_device": 7,
                      "ends": {"normal": 1, "refused": 1}}],
          "open_sessions": [], "missing_device_info": 1}


def utc_us(*args):
    return int(datetime(*args, tzinfo=timezone.utc).timestamp()) * S


class ComposeTests(SynchronousTestCase):
    """One message: text and HTML summaries, the CSV attached."""

    def test_parts(self):
        raw = compose(REPORT, "ACME <Corp>\r\nBcc: x@evil.test", "reports@rc.test",
                      ["ops@acme.test", "boss@acme.test"], utc_us(2026, 11, 1, 6))
        message = message_from_bytes(raw, policy=policy.default)
        self.assertEqual(message["Subject"].strip(), "Remote sessions of ACME <Corp>  Bcc: "
                                             "x@evil.test: 2026-10-01 to 2026-11-01")
        self.assertIsNone(message["Bcc"])
        self.assertEqual(message["To"], "ops@acme.test, boss@acme.test")
        text = message.get_body(("plain",)).get_content()
        self.assertIn("Sessions:", text)
        self.assertIn("Total duration:     0:01:01", text)
        self.assertIn("missing for 1 session(s)", text)
        html = message.get_body(("html",)).get_content()
        self.assertIn("ACME &lt;Corp&gt;", html)
        [attachment] = list(message.iter_attachments())
        self.assertEqual((attachment.get_content_type(), attachment.get_filename()),
                         ("text/csv", "sessions-acme-2026-10-01.csv"))
        self.assertEqual(attachment.get_content().encode().replace(b"\r\n", b"\n"),
                         report_csv(REPORT).replace(b"\r\n", b"\n"))


class MailerTests(SynchronousTestCase):
    """Mailings are queued once, sent, retried with backoff, and audited."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(utc_us(2026, 11, 2, 9) / S)
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.store.run_sync(insert_unit, "acme", "ACME", "Europe/Berlin", 0)
        self.store.run_sync(add_recipient, "acme", "ops@acme.test", 0, "admin")
        self.outcomes = []
        self.sent = []
        self.mailer = ReportMailer(self.store, self.clock, self.send, "reports@rc.test",
                                   send_grace=600)

    def send(self, recipients, message):
        self.sent.append((recipients, message))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        return fail(outcome) if outcome is not None else succeed(None)

    def wait(self, coroutine):
        return self.successResultOf(Deferred.fromCoroutine(coroutine))

    def mailings(self):
        return self.store.run_sync(mailings_of, "acme")

    def test_send_now(self):
        october = period("2026-10-01", "2026-11-01", zone("Europe/Berlin"), 0)
        self.wait(self.mailer.send_now("acme", "alice", october, "day"))
        self.assertEqual(self.wait(self.mailer.send_due()), 1)
        [(recipients, message)] = self.sent
        self.assertEqual(recipients, ["ops@acme.test"])
        self.assertIn(b"2026-10-01 to 2026-11-01", message)
        [mailing] = self.mailings()
        self.assertEqual((mailing["state"], mailing["attempts"], mailing["requested_by"]),
                         ("sent", 1, "alice"))
        [audit] = self.store.run_sync(audit_records, "report-mail-sent")
        self.assertEqual(audit["unit_id"], "acme")
        self.assertEqual(self.wait(self.mailer.send_due()), 0)

    def test_a_failed_send_is_retried_with_backoff_then_given_up(self):
        october = period("2026-10-01", "2026-11-01", zone("Europe/Berlin"), 0)
        self.wait(self.mailer.send_now("acme", "alice", october, None))
        self.outcomes = [ConnectionRefusedError("smtp down")] * (len(RETRY_DELAYS) + 1)
        self.wait(self.mailer.send_due())
        [mailing] = self.mailings()
        self.assertEqual((mailing["state"], mailing["attempts"]), ("queued", 1))
        self.assertIn("smtp down", mailing["last_error"])
        self.clock.advance(RETRY_DELAYS[0] - 1)
        self.wait(self.mailer.send_due())
        self.assertEqual(len(self.sent), 1)
        for delay in RETRY_DELAYS:
            self.clock.advance(delay + 1)
            self.wait(self.mailer.send_due())
        [mailing] = self.mailings()
        self.assertEqual((mailing["state"], mailing["attempts"], len(self.sent)),
                         ("failed", len(RETRY_DELAYS) + 1, len(RETRY_DELAYS) + 1))
        failures = self.store.run_sync(audit_records, "report-mail-failed")
        self.assertEqual(len(failures), len(RETRY_DELAYS) + 1)
        self.assertEqual(self.mailer.failures, len(RETRY_DELAYS) + 1)

    def test_a_schedule_sends_each_occurrence_once_even_after_downtime(self):
        """Daily at 06:00: created before this morning's, sent once after the grace; three
        days of downtime later, only the latest occurrence is sent, once."""
        self.store.run_sync(add_schedule, dict(
            unit_id="acme", frequency="daily", at_time="06:00", weekday=None,
            day_of_month=None, group_by=None, created_us=utc_us(2026, 11, 1, 12),
            created_by="admin"))
        self.assertEqual(self.wait(self.mailer.run()), "1 queued, 1 sent, 0 pending")
        self.assertEqual(self.wait(self.mailer.run()), "0 queued, 0 sent, 0 pending")
        [mailing] = self.mailings()
        self.assertEqual(mailing["period_from_us"], utc_us(2026, 11, 1) - 3600 * S)
        self.clock.advance(3 * 86400)  # down for three days
        self.wait(self.mailer.run())
        self.wait(self.mailer.run())
        self.assertEqual(len(self.mailings()), 2)
        self.assertEqual(self.mailings()[0]["period_from_us"], utc_us(2026, 11, 4) - 3600 * S)

    def test_the_grace_delays_a_scheduled_send(self):
        self.store.run_sync(add_schedule, dict(
            unit_id="acme", frequency="daily", at_time="09:55", weekday=None,
            day_of_month=None, group_by=None, created_us=utc_us(2026, 11, 2, 8),
            created_by="admin"))
        self.assertEqual(self.wait(self.mailer.queue_due_schedules()), 0)  # 08:55 UTC was 5 min ago
        self.clock.advance(301)
        self.assertEqual(self.wait(self.mailer.queue_due_schedules()), 1)

    def test_without_recipients_or_smtp_the_mailing_fails_at_once(self):
        october = period("2026-10-01", "2026-11-01", zone("Europe/Berlin"), 0)
        unconfigured = ReportMailer(self.store, self.clock, None, "reports@rc.test")
        self.wait(unconfigured.send_now("acme", "alice", october, None))
        self.wait(unconfigured.send_due())
        self.assertEqual(self.mailings()[0]["state"], "failed")
        self.assertIn("not configured", self.mailings()[0]["last_error"])

"""Tests for the agent's reports of failed panel logins (remotecomm.device.tap)."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.device.tap import PANEL_LOGIN_REPORTS_PER_MINUTE, panel_login_reporter


class PanelLoginReportTests(SynchronousTestCase):
    def test_a_flood_is_bounded_per_minute(self):
        clock, sent = Clock(), []
        report = panel_login_reporter(clock, ("rms.test",), lambda c, m: sent.append((c, m)))
        outcomes = [report(f"guess-{n}") for n in range(PANEL_LOGIN_REPORTS_PER_MINUTE + 5)]
        self.assertEqual(outcomes.count(True), PANEL_LOGIN_REPORTS_PER_MINUTE)
        self.assertEqual(len(sent), PANEL_LOGIN_REPORTS_PER_MINUTE)
        self.assertEqual((sent[0][0], sent[0][1].operator), ("rms.test", "guess-0"))
        clock.advance(61)
        self.assertTrue(report("later"))

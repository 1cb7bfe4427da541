"""Tests for remotecomm.metrics: /metrics in Prometheus text format."""

from types import SimpleNamespace

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.metrics import MetricsResource, manager_registry, relay_registry


def fake_core():
    return SimpleNamespace(sessions={"s": 1}, connection_count=lambda: 2, setups=3, refusals=1,
                           refusals_shed=4, frames_forwarded=40,
                           bytes_forwarded={"device": 500, "terminal": 700},
                           on_admitted=None)


class MetricsTests(SynchronousTestCase):
    """The relay's plain counters appear under stable names."""

    def setUp(self):
        self.core = fake_core()
        outbox = SimpleNamespace(written={"started": 6, "ended": 4}, filed=9, pending=1,
                                 dead=2)
        mailer = SimpleNamespace(sent=5, failures=2, pending=1)
        self.node = SimpleNamespace(capacity=250, draining=True)
        self.http = StubTreq(MetricsResource(manager_registry(
            relay_registry(self.core, outbox, node=self.node), mailer)))

    def scrape(self, path="/metrics"):
        response = self.successResultOf(self.http.get("http://metrics" + path))
        return response, self.successResultOf(response.content()).decode()

    def test_counters_and_gauges(self):
        """Each counter is exported with its value and labels."""
        self.core.on_admitted(0.003)
        response, text = self.scrape()
        self.assertEqual(response.code, 200)
        self.assertTrue(response.headers.getRawHeaders("content-type")[0].startswith(
            "text/plain; version="))
        for line in ("remotecomm_relay_sessions_open 1.0", "remotecomm_relay_connections 2.0",
                     "remotecomm_relay_setups_total 3.0", "remotecomm_relay_refusals_total 1.0",
                     "remotecomm_relay_refusals_shed_total 4.0",
                     "remotecomm_relay_frames_total 40.0",
                     'remotecomm_relay_bytes_total{from_side="device"} 500.0',
                     'remotecomm_relay_bytes_total{from_side="terminal"} 700.0',
                     'remotecomm_relay_logs_written_total{kind="started"} 6.0',
                     'remotecomm_relay_logs_written_total{kind="ended"} 4.0',
                     "remotecomm_relay_logs_filed_total 9.0",
                     "remotecomm_relay_logs_pending 1.0",
                     "remotecomm_relay_logs_dead 2.0",
                     "remotecomm_relay_capacity 250.0", "remotecomm_relay_draining 1.0",
                     "remotecomm_relay_admission_seconds_count 1.0",
                     'remotecomm_relay_admission_seconds_bucket{le="0.005"} 1.0'):
            self.assertIn(line, text)

    def test_other_paths_are_404(self):
        """Only /metrics exists on the metrics listener."""
        response, _ = self.scrape("/")
        self.assertEqual(response.code, 404)

    def test_report_mail_counters(self):
        """Sent and failed report e-mails are counted; waiting ones are a gauge."""
        _, text = self.scrape()
        for line in ("remotecomm_report_mails_sent_total 5.0",
                     "remotecomm_report_mail_failures_total 2.0",
                     "remotecomm_report_mails_pending 1.0"):
            self.assertIn(line, text)

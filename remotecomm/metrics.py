"""``/metrics``: the server's numbers in Prometheus text format, on a listener of its own.

The relay's hot path only adds to plain integers (``RelayCore`` and
``LogOutbox`` attributes); :class:`RelayCollector` reads them when
scraped.  Only the admission latency is a histogram, observed once per
joining side, off the forwarding path.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from twisted.web import server
from twisted.web.resource import Resource

from remotecomm.relay.core import RelayCore
from remotecomm.relay.logs import LogOutbox

ADMISSION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class RelayCollector:
    """Reads the relay's counters at scrape time."""

    def __init__(self, core: RelayCore, outbox: LogOutbox, node=None):
        self._core = core
        self._outbox = outbox
        self._node = node  # the RelayNode: its capacity and whether it drains

    def collect(self):
        core, outbox = self._core, self._outbox
        yield GaugeMetricFamily("remotecomm_relay_sessions_open",
                                "Sessions with at least one admitted side", len(core.sessions))
        yield GaugeMetricFamily("remotecomm_relay_connections",
                                "Admitted relay connections", core.connection_count())
        yield CounterMetricFamily("remotecomm_relay_setups",
                                  "Sessions whose two sides were paired", core.setups)
        yield CounterMetricFamily("remotecomm_relay_refusals",
                                  "Connections refused at the handshake or the token check",
                                  core.refusals)
        yield CounterMetricFamily("remotecomm_relay_refusals_shed",
                                  "Connections turned away unexamined: their address had too "
                                  "many refused joins", core.refusals_shed)
        yield CounterMetricFamily("remotecomm_relay_frames",
                                  "Envelope frames forwarded", core.frames_forwarded)
        forwarded = CounterMetricFamily("remotecomm_relay_bytes",
                                        "Envelope bytes forwarded, by the side they came from",
                                        labels=["from_side"])
        for side, count in core.bytes_forwarded.items():
            forwarded.add_metric([side], count)
        yield forwarded
        written = CounterMetricFamily("remotecomm_relay_logs_written",
                                      "Session logs written to the relay's store",
                                      labels=["kind"])
        for kind, count in outbox.written.items():
            written.add_metric([kind], count)
        yield written
        yield CounterMetricFamily("remotecomm_relay_logs_filed",
                                  "Session logs the manager acknowledged", outbox.filed)
        yield GaugeMetricFamily("remotecomm_relay_logs_pending",
                                "Session logs not yet acknowledged", outbox.pending)
        yield GaugeMetricFamily("remotecomm_relay_logs_dead",
                                "Session logs the manager rejected for good (dead letters)",
                                outbox.dead)
        if self._node is not None:
            yield GaugeMetricFamily("remotecomm_relay_capacity",
                                    "Sessions this relay node takes at once", self._node.capacity)
            yield GaugeMetricFamily("remotecomm_relay_draining",
                                    "1 while this relay node takes no new sessions (drained)",
                                    int(self._node.draining))


class MailCollector:
    """Reads the report mailer's counters at scrape time."""

    def __init__(self, mailer):
        self._mailer = mailer

    def collect(self):
        yield CounterMetricFamily("remotecomm_report_mails_sent",
                                  "Report e-mails the SMTP server accepted", self._mailer.sent)
        yield CounterMetricFamily("remotecomm_report_mail_failures",
                                  "Failed attempts to send a report e-mail (each is retried "
                                  "with backoff, and audited)", self._mailer.failures)
        yield GaugeMetricFamily("remotecomm_report_mails_pending",
                                "Report e-mails waiting to be sent", self._mailer.pending)


def manager_registry(registry: CollectorRegistry, mailer) -> CollectorRegistry:
    """Add the manager's counters (report mail) to ``registry``."""
    registry.register(MailCollector(mailer))
    return registry


def relay_registry(core: RelayCore, outbox: LogOutbox,
                   registry: CollectorRegistry | None = None, node=None) -> CollectorRegistry:
    """A registry with the relay's counters (and its ``node``'s capacity and drain), and its
    admission-latency histogram."""
    registry = registry or CollectorRegistry(auto_describe=True)
    registry.register(RelayCollector(core, outbox, node))
    admission = Histogram("remotecomm_relay_admission_seconds",
                          "From a side's join to its being established (token check and "
                          "started log included)", buckets=ADMISSION_BUCKETS, registry=registry)
    core.on_admitted = admission.observe
    return registry


class MetricsResource(Resource):
    """``GET /metrics`` (any other path: 404)."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry):
        super().__init__()
        self._registry = registry

    def render_GET(self, request: server.Request) -> bytes:
        if request.path != b"/metrics":
            request.setResponseCode(404)
            return b"not found\n"
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return generate_latest(self._registry)

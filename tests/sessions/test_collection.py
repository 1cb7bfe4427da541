"""Tests for remotecomm.sessions.collection: S311–S314, collecting what devices kept."""

from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.xmlstream import TimeoutError

from remotecomm.sessions.collection import MAX_ASKS, RecordCollector
from remotecomm.sessions.messages import KeptReports, SessionReport
from remotecomm.sessions.records import keep_device_report, one_record
from remotecomm.store.accounts import insert_unit
from remotecomm.store.devices import insert_device
from remotecomm.store.schema import sessions
from remotecomm.testing.fakes import migrated_inline_store
from remotecomm.testing.xmpp import parse
from remotecomm.xmpp.payloads import decode_kept_reports, encode

S = 1_000_000
T0 = 1_800_000_000
DAY = 86400


def report(request_id, session_id, **changes):
    fields = dict(request_id=request_id, session_id=session_id, app_id="web-server",
                  agent_version="0.9", operator="olga", started_us=(T0 - 50) * S,
                  ended_us=(T0 - 40) * S, end_code=1000, end_reason="normal",
                  bytes_to_device=10, bytes_from_device=20, reported_us=(T0 - 39) * S,
                  firmware_version="4.2.1", errors=0)
    fields.update(changes)
    return SessionReport(**fields)


class FakeDevices:
    """Devices that answer report requests from what they kept (through the XMPP codec)."""

    def __init__(self):
        self.reachable = {"mfp-1", "mfp-2", "gx-1"}
        self.silent = set()
        self.kept: dict[str, dict[str, SessionReport]] = {}
        self.asked = []

    def is_reachable(self, device_id):
        return device_id in self.reachable

    def ask_kept_reports(self, device_id, asked):
        self.asked.append((device_id, asked.request_ids))
        if device_id in self.silent:
            return fail(TimeoutError("no answer"))
        kept = self.kept.get(device_id, {})
        answer = KeptReports(reports=tuple(kept[r] for r in asked.request_ids if r in kept))
        result = parse(f"<iq type='result'>{encode(answer).toXml()}</iq>")
        return succeed(decode_kept_reports(result, asked))


class CollectionTests(SynchronousTestCase):
    """Missing device reports are asked for, kept once, and asked again only while useful."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.store.run_sync(insert_unit, "acme", "ACME Corp", "UTC", 0)
        self.store.run_sync(insert_unit, "globex", "Globex", "UTC", 0)
        for device_id, unit in (("mfp-1", "acme"), ("mfp-2", "acme"), ("gx-1", "globex")):
            self.store.run_sync(insert_device, device_id, unit, device_id, "M", 0)
        self.devices = FakeDevices()
        self.collector = RecordCollector(self.store, self.clock, self.devices, window=30 * DAY)

    def ended_session(self, n, device_id="mfp-1", unit_id="acme", notified=True,
                      ended_ago=40):
        request_id, session_id = f"req-{n:018d}", f"s{n:031d}"
        self.store.run_sync(lambda c: c.execute(sessions.insert().values(
            request_id=request_id, state="ended", unit_id=unit_id, user_id="alice",
            terminal_id="t-1", device_id=device_id, app_id="web-server", session_id=session_id,
            terminal_token_delivered=True, approved_by_test_approver=False,
            requested_us=(T0 - ended_ago - 20) * S, ended_us=(T0 - ended_ago) * S,
            end_reason="normal", device_notified_us=(T0 - ended_ago - 15) * S
            if notified else None)))
        return request_id, session_id

    def collect(self, **where):
        return self.successResultOf(Deferred.fromCoroutine(self.collector.collect(**where)))

    def device_source(self, request_id, unit_id="acme"):
        return self.store.run_sync(one_record, request_id, unit_id).get("device")

    def test_missing_reports_are_collected_once(self):
        """S312–S314: the device's reports are kept, with its clock beside ours; a second
        collection asks nothing and changes nothing."""
        kept = {}
        for n in (1, 2):
            request_id, session_id = self.ended_session(n)
            kept[request_id] = report(request_id, session_id)
        self.devices.kept["mfp-1"] = kept
        outcome = self.collect(unit_id="acme")
        self.assertEqual((outcome.asked_devices, outcome.reports_collected,
                          outcome.still_missing), (["mfp-1"], 2, 0))
        first = self.device_source("req-000000000000000001")
        self.assertEqual((first["operator"], first["firmware_version"], first["started_at_us"],
                          first["received_at_us"]), ("olga", "4.2.1", (T0 - 50) * S, T0 * S))
        self.devices.asked.clear()
        self.clock.advance(60)
        again = self.collect(unit_id="acme")
        self.assertEqual((again.asked_devices, again.reports_collected, self.devices.asked),
                         ([], 0, []))
        self.assertEqual(self.device_source("req-000000000000000001"), first)

    def test_a_pushed_report_is_not_asked_for_nor_doubled(self):
        """A report the device pushed is the record's; collecting the same again is ignored."""
        request_id, session_id = self.ended_session(1)
        pushed = report(request_id, session_id, end_reason="pushed")
        self.assertTrue(self.store.run_sync(keep_device_report, "mfp-1", pushed, T0 * S))
        self.assertFalse(self.store.run_sync(keep_device_report, "mfp-1",
                                             report(request_id, session_id), T0 * S))
        self.assertEqual(self.collect().asked_devices, [])
        self.assertEqual(self.device_source(request_id)["end_reason"], "pushed")

    def test_an_offline_device_is_collected_when_it_returns(self):
        """Offline when asked: named in the answer, then collected at its hello."""
        request_id, session_id = self.ended_session(1)
        self.devices.kept["mfp-1"] = {request_id: report(request_id, session_id)}
        self.devices.reachable.discard("mfp-1")
        outcome = self.collect(unit_id="acme")
        self.assertEqual((outcome.offline_devices, outcome.still_missing), (["mfp-1"], 1))
        self.assertIsNone(self.device_source(request_id))
        self.devices.reachable.add("mfp-1")
        self.successResultOf(Deferred.fromCoroutine(self.collector.device_returned("mfp-1")))
        self.assertEqual(self.device_source(request_id)["operator"], "olga")

    def test_a_silent_device_is_asked_again_later(self):
        """No answer in time is not an answer: the session stays wanted, its asks uncounted."""
        request_id, _ = self.ended_session(1)
        self.devices.silent.add("mfp-1")
        for _ in range(MAX_ASKS + 1):
            outcome = self.collect()
            self.assertEqual((outcome.silent_devices, outcome.still_missing), (["mfp-1"], 1))

    def test_a_device_that_kept_nothing_is_asked_at_most_a_few_times(self):
        """"Nothing kept" counts; after MAX_ASKS of them the session is given up on."""
        self.ended_session(1)
        for _ in range(MAX_ASKS):
            self.assertEqual(self.collect().not_kept, 1)
        self.devices.asked.clear()
        self.assertEqual((self.collect().still_missing, self.devices.asked), (0, []))

    def test_only_the_callers_unit_and_useful_sessions_are_asked(self):
        """Another unit's devices, sessions whose device never got its token, and sessions
        older than the window are not asked about."""
        self.ended_session(1, device_id="gx-1", unit_id="globex")
        self.ended_session(2, notified=False)
        self.ended_session(3, ended_ago=31 * DAY)
        outcome = self.collect(unit_id="acme")
        self.assertEqual((outcome.asked_devices, self.devices.asked), ([], []))
        self.assertEqual(self.collect(unit_id="globex").asked_devices, ["gx-1"])

    def test_many_sessions_are_asked_in_bounded_chunks(self):
        """At most 50 sessions per request to a device."""
        for n in range(120):
            self.ended_session(n)
        self.collect()
        self.assertEqual([len(ids) for _, ids in self.devices.asked], [50, 50, 20])

    def test_a_report_for_another_devices_session_is_not_kept(self):
        """A device cannot fill in another device's session."""
        request_id, session_id = self.ended_session(1, device_id="mfp-2")
        self.assertIsNone(self.store.run_sync(keep_device_report, "mfp-1",
                                              report(request_id, session_id), T0 * S))

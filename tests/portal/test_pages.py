"""Tests for remotecomm.portal.pages rendered alone: what a record page says."""

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.portal import pages

VIEWER = pages.Viewer("alice", "acme", "technician", (("acme", "technician"),), "c" * 43)


class SessionPageTests(SynchronousTestCase):
    def render(self, record: dict) -> str:
        return self.successResultOf(pages.render(pages.session_page(VIEWER, record, False))
                                    ).decode("utf-8")

    def test_a_side_the_manager_ended_for_a_lost_relay_says_so(self):
        record = {"request_id": "R" * 22, "state": "ended", "end_reason": "relay-lost",
                  "device_id": "mfp-1", "app_id": "web-server", "user_id": "alice",
                  "terminal_id": "t-1", "relay_node": "relay-b",
                  "connections": {
                      "device": {"party_id": "mfp-1", "end_reason": "relay-lost",
                                 "end_written_by": "manager", "bytes_to_side": 1,
                                 "bytes_from_side": 2},
                      "terminal": {"party_id": "t-1", "end_reason": "normal",
                                   "end_written_by": "relay", "bytes_to_side": 2,
                                   "bytes_from_side": 1}}}
        body = self.render(record)
        self.assertEqual(body.count("(logged by the manager: the relay was lost)"), 1)

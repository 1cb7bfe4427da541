"""Tests for remotecomm.simulator.maintenance: the simulated MFP runs each job for real."""

from pathlib import Path

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.simulator.device_state import DeviceState
from remotecomm.simulator.maintenance import run_job
from remotecomm.simulator.web_server import web_server_site


class RunJobTests(SynchronousTestCase):
    def setUp(self):
        self.state = DeviceState("MFP", "MFP 9000")

    def test_counters_change_as_it_copies(self):
        before = run_job(self.state, {"action": "counters"})["result"]
        self.assertEqual(before["printed"], {"total": 12840, "colour": 4120, "mono": 8720})
        self.state.press("copy")
        self.state.press("start")
        after = run_job(self.state, {"action": "counters"})["result"]
        self.assertEqual(after["copied"]["total"], before["copied"]["total"] + 1)

    def test_settings_are_checked_again_on_the_device(self):
        done = run_job(self.state, {"action": "config-set", "key": "sleep_minutes",
                                    "value": "30"})
        self.assertEqual(done, {"outcome": "done",
                                "result": {"sleep_minutes": "30", "previous": "15"}})
        self.assertEqual(run_job(self.state, {"action": "config-get",
                                              "key": "sleep_minutes"})["result"],
                         {"sleep_minutes": "30"})
        for job, code in (({"action": "config-set", "key": "sleep_minutes", "value": "999"},
                           "invalid-value"),
                          ({"action": "config-get", "key": "colour"}, "unknown-setting"),
                          ({"action": "reboot"}, "unknown-action")):
            outcome = run_job(self.state, job)
            self.assertEqual((outcome["outcome"], outcome["error_code"]), ("failed", code))

    def test_supplies_and_the_log(self):
        self.state.set_error("out-of-paper")
        supplies = run_job(self.state, {"action": "supplies"})["result"]
        self.assertEqual((supplies["status"], supplies["paper"]["tray1"]),
                         ("out-of-paper", "empty"))
        for n in range(500):
            self.state.note(f"line {n}")
        lines = run_job(self.state, {"action": "log"})["result"]["lines"]
        self.assertEqual((len(lines), lines[-1]), (200, "line 499"))

    def test_a_restart_takes_the_apps_away_for_a_while(self):
        outcome = run_job(self.state, {"action": "restart"})
        self.assertEqual(outcome["result"]["restarted"], True)
        self.assertTrue(self.state.restarting)
        http = StubTreq(web_server_site(self.state, Path(self.mktemp())).resource)
        response = self.successResultOf(http.get("http://device/api/status"))
        self.assertEqual(response.code, 503)
        self.state.end_restart()
        response = self.successResultOf(http.get("http://device/api/status"))
        self.assertEqual(response.code, 200)

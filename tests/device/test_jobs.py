"""Tests for remotecomm.device.jobs and the panel channel's job routes."""

import json
from pathlib import Path

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.device.approvals import Approvals
from remotecomm.device.history import History
from remotecomm.device.jobs import AgentJobs
from remotecomm.device.panel_channel import PanelChannel
from remotecomm.maintenance.messages import JobRequest
from remotecomm.sessions.messages import MessageRefused

T0 = 1_800_000_000
S = 1_000_000
SECRET = "s" * 32
JOB = "job-" + "a" * 22


class AgentJobTests(SynchronousTestCase):
    """Jobs wait for the panel; each ID runs at most once, across agent restarts."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.history = History(Path(self.mktemp()) / "history.jsonl")
        self.sent = []
        self.jobs = self.agent()
        approvals = Approvals(self.clock, self.history, set(), lambda c, d: None)
        self.http = StubTreq(PanelChannel(approvals, SECRET, jobs=self.jobs).resource())

    def agent(self):
        return AgentJobs(self.clock, self.history, lambda c, m: self.sent.append((c, m)))

    def call(self, method, path, body=None):
        response = self.successResultOf(self.http.request(
            method, "http://agent" + path, headers={"X-Panel-Secret": SECRET,
                                                    "Content-Type": "application/json"},
            data=json.dumps(body).encode() if body is not None else None))
        return response.code, json.loads(self.successResultOf(response.content()))

    def request(self, job_id=JOB, action="config-set", deadline=T0 + 60):
        return JobRequest(job_id, action, deadline * S, "sleep_minutes", "30")

    def test_the_panel_takes_the_job_and_its_result_goes_to_the_manager(self):
        self.jobs.on_request("rms.test", self.request())
        code, body = self.call("GET", "/v1/jobs")
        self.assertEqual([(j["job_id"], j["action"], j["key"], j["value"])
                          for j in body["jobs"]],
                         [(JOB, "config-set", "sleep_minutes", "30")])
        self.assertEqual(self.call("POST", f"/v1/jobs/{JOB}",
                                   {"outcome": "done", "result": {"sleep_minutes": 30}}),
                         (200, {"status": "sent"}))
        [(component, result)] = self.sent
        self.assertEqual((component, result.outcome, json.loads(result.result)),
                         ("rms.test", "done", {"sleep_minutes": 30}))
        self.assertEqual(self.call("GET", "/v1/jobs")[1]["jobs"], [])
        self.assertEqual(self.call("POST", f"/v1/jobs/{JOB}", {"outcome": "done"})[0], 404)

    def test_a_restart_drops_the_links_before_its_result_goes_out(self):
        order = []
        self.jobs.on_restart = lambda: order.append("restart")
        self.jobs._send = lambda c, m: order.append(("sent", m.outcome))
        self.jobs.on_request("rms.test", JobRequest(JOB, "restart", (T0 + 60) * S))
        self.jobs.report(JOB, "done", {"restarted": True})
        self.assertEqual(order, ["restart", ("sent", "done")])

    def test_a_repeated_request_is_answered_not_run_again(self):
        self.jobs.on_request("rms.test", self.request())
        self.jobs.on_request("rms.test", self.request())
        self.assertEqual(len(self.jobs.waiting()), 1)
        self.jobs.report(JOB, "done", {"ok": True})
        self.jobs.on_request("rms.test", self.request())
        self.assertEqual([m.job_id for _, m in self.sent], [JOB, JOB])
        self.assertEqual(self.jobs.waiting(), [])
        # The agent restarts: the history still knows the result.
        again = self.agent()
        again.on_request("rms.test", self.request())
        self.assertEqual((len(self.sent), self.sent[-1][1].outcome, again.waiting()),
                         (3, "done", []))

    def test_a_job_taken_before_a_restart_is_not_run_twice(self):
        self.jobs.on_request("rms.test", self.request())
        restarted = self.agent()
        restarted.on_request("rms.test", self.request())
        self.assertEqual(restarted.waiting(), [])
        result = self.sent[-1][1]
        self.assertEqual((result.outcome, result.error_code), ("failed", "device-error"))

    def test_expired_jobs_fail_and_the_queue_is_bounded(self):
        self.jobs.on_request("rms.test", self.request(deadline=T0 + 1))
        self.clock.advance(2)
        self.assertEqual(self.jobs.waiting(), [])
        self.assertEqual(self.sent[-1][1].error_code, "expired")
        for n in range(32):
            self.jobs.on_request("rms.test", self.request(f"job-{n:022d}"))
        with self.assertRaises(MessageRefused):
            self.jobs.on_request("rms.test", self.request("job-" + "z" * 22))

    def test_bad_reports_are_refused_and_the_job_stays(self):
        self.jobs.on_request("rms.test", self.request())
        for body in ({"outcome": "failed", "error_code": "bored"},
                     {"outcome": "done", "result": "x" * 70000},
                     {"outcome": "maybe"}, {"outcome": "done", "extra": 1}):
            self.assertEqual(self.call("POST", f"/v1/jobs/{JOB}", body)[0], 400, body)
        self.assertEqual(len(self.jobs.waiting()), 1)
        self.assertEqual(self.sent, [])

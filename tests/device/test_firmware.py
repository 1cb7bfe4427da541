"""Tests for remotecomm.device.firmware and the firmware part of remotecomm.device.jobs: the
agent downloads an image over real HTTP on loopback (a broken connection resumes with Range,
a wrong image is refused), offers it to the panel, and reports progress."""

import hashlib
import json
from pathlib import Path

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web import server
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource

from remotecomm.clock import now_us
from remotecomm.device.approvals import Approvals
from remotecomm.device.firmware import FetchFailed, ImageFetcher
from remotecomm.device.history import History
from remotecomm.device.jobs import AgentJobs
from remotecomm.device.panel_channel import PanelChannel
from remotecomm.http_files import serve_file
from remotecomm.json_http import make_site
from remotecomm.maintenance.messages import FirmwareImage, JobProgress, JobRequest

IMAGE = bytes(range(256)) * 1024  # 256 KiB
TOKEN = "t" * 43
JOB = "job-" + "f" * 22
SECRET = "s" * 32


class ManagerDownloads(Resource):
    """The manager's download route, with a first answer that breaks off half-way."""

    isLeaf = True

    def __init__(self, path: Path, break_first: bool):
        super().__init__()
        self.path = path
        self.break_first = break_first
        self.ranges = []

    def render_GET(self, request):
        if request.getHeader(b"authorization") != f"Bearer {TOKEN}".encode():
            request.setResponseCode(410)
            return b'{"code": "reference-used"}'
        self.ranges.append(request.getHeader(b"range"))
        if self.break_first:
            self.break_first = False
            request.setHeader(b"content-length", b"%d" % len(IMAGE))
            request.write(IMAGE[:100_000])
            reactor.callLater(0.05, request.channel.transport.abortConnection)
            return server.NOT_DONE_YET
        serve_file(request, self.path, len(IMAGE))
        return server.NOT_DONE_YET


class FetcherTests(TestCase):
    async def serve(self, data: bytes, break_first: bool = False) -> str:
        path = Path(self.mktemp())
        path.write_bytes(data)
        self.manager = ManagerDownloads(path, break_first)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            server.Site(self.manager))
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}/api/v1/firmware-downloads/{JOB}"

    def fetch(self, url: str, sha256: str | None = None, token: str = TOKEN):
        self.fetcher = ImageFetcher(reactor, Path(self.mktemp()), None)
        self.fetcher_module_pause(0.01)
        image = FirmwareImage(url, token, sha256 or hashlib.sha256(IMAGE).hexdigest(),
                              len(IMAGE), "4.3.0")
        self.percents = []
        return self.fetcher.fetch(JOB, lambda: image, now_us(reactor) + 20_000_000,
                                  self.percents.append)

    def fetcher_module_pause(self, seconds: float) -> None:
        from remotecomm.device import firmware
        self.patch(firmware, "RETRY_PAUSE", seconds)

    async def test_a_broken_download_resumes_where_it_stopped(self):
        url = await self.serve(IMAGE, break_first=True)
        path = await self.fetch(url)
        self.assertEqual(path.read_bytes(), IMAGE)
        self.assertEqual(self.manager.ranges, [None, b"bytes=100000-"])
        self.assertEqual(self.percents[-1], 100)
        self.assertEqual([p.name for p in self.fetcher.folder.iterdir()], [f"{JOB}.bin"])

    async def test_a_wrong_image_is_refused_and_removed(self):
        url = await self.serve(IMAGE[:-1] + b"X")
        with self.assertRaises(FetchFailed) as e:
            await self.fetch(url)
        self.assertEqual(e.exception.code, "checksum-mismatch")
        self.assertEqual(list(self.fetcher.folder.iterdir()), [])

    async def test_a_refused_reference_is_not_tried_again(self):
        url = await self.serve(IMAGE)
        with self.assertRaises(FetchFailed) as e:
            await self.fetch(url, token="u" * 43)
        self.assertEqual(e.exception.code, "download-failed")
        self.assertIn("410", e.exception.message)
        self.assertEqual(self.manager.ranges, [])


class FakeFetcher:
    """Downloads at once (or fails), reporting progress."""

    def __init__(self, folder: Path, failure: FetchFailed | None = None):
        self.folder = folder
        self.failure = failure
        self.discarded = []

    def clear(self):
        pass

    def path_of(self, job_id):
        return self.folder / f"{job_id}.bin"

    def discard(self, job_id):
        self.discarded.append(job_id)

    async def fetch(self, job_id, image, deadline_us, progress):
        progress(50)
        if self.failure is not None:
            raise self.failure
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path_of(job_id).write_bytes(IMAGE)
        progress(100)
        return self.path_of(job_id)


class AgentFirmwareJobTests(TestCase):
    """The panel channel served on loopback, as the simulator reads it."""
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.history = History(Path(self.mktemp()) / "history.jsonl")
        self.sent = []
        self.restarted = []

    async def agent(self, failure=None):
        self.fetcher = FakeFetcher(Path(self.mktemp()), failure)
        jobs = AgentJobs(self.clock, self.history, lambda c, m: self.sent.append(m),
                         self.fetcher)
        jobs.on_restart = lambda: self.restarted.append(True)
        approvals = Approvals(self.clock, self.history, set(), lambda c, d: None)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            make_site(PanelChannel(approvals, SECRET, jobs=jobs).resource()))
        self.addCleanup(port.stopListening)
        self.url = f"http://127.0.0.1:{port.getHost().port}"
        self.http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor,
                                                                      persistent=False)))
        return jobs

    async def call(self, method, path, body=None):
        response = await self.http.request(
            method, self.url + path, headers={"X-Panel-Secret": SECRET,
                                              "Content-Type": "application/json"},
            data=json.dumps(body).encode() if body is not None else None)
        return response.code, await response.content()

    def request(self):
        return JobRequest(JOB, "firmware", (1_800_000_000 + 900) * 1_000_000,
                          image_url="https://m/x", image_token=TOKEN,
                          image_sha256=hashlib.sha256(IMAGE).hexdigest(),
                          image_size=len(IMAGE), image_version="4.3.0")

    async def test_the_panel_reads_the_verified_image_reports_progress_and_restarts(self):
        jobs = await self.agent()
        jobs.on_request("rms.test", self.request())
        self.assertEqual([(m.phase, m.percent) for m in self.sent], [("download", 50),
                                                                      ("download", 100)])
        code, body = await self.call("GET", "/v1/jobs")
        [job] = json.loads(body)["jobs"]
        self.assertEqual(job["image"], {"path": f"/v1/jobs/{JOB}/image",
                                        "sha256": hashlib.sha256(IMAGE).hexdigest(),
                                        "size": len(IMAGE), "version": "4.3.0"})
        code, body = await self.call("GET", job["image"]["path"])
        self.assertEqual((code, body), (200, IMAGE))
        progress = f"/v1/jobs/{JOB}/progress"
        self.assertEqual((await self.call("POST", progress, {"percent": 40}))[0], 200)
        self.assertEqual((await self.call("POST", progress, {"percent": 101}))[0], 400)
        self.assertEqual(self.sent[-1], JobProgress(JOB, "install", 40))
        self.assertEqual((await self.call("POST", f"/v1/jobs/{JOB}", {
            "outcome": "done", "result": {"version": "4.3.0"}}))[0], 200)
        self.assertEqual((self.sent[-1].outcome, self.restarted), ("done", [True]))
        self.assertEqual(self.fetcher.discarded, [JOB])
        self.assertEqual((await self.call("GET", job["image"]["path"]))[0], 404)

    async def test_a_failed_download_fails_the_job_and_never_reaches_the_panel(self):
        jobs = await self.agent(FetchFailed("checksum-mismatch", "not the image"))
        jobs.on_request("rms.test", self.request())
        self.assertEqual((self.sent[-1].outcome, self.sent[-1].error_code),
                         ("failed", "checksum-mismatch"))
        self.assertEqual(json.loads((await self.call("GET", "/v1/jobs"))[1])["jobs"], [])
        self.assertEqual((await self.call("POST", f"/v1/jobs/{JOB}", {"outcome": "done"}))[0], 404)

    async def test_a_repeated_request_brings_the_newest_reference(self):
        jobs = await self.agent()
        first = self.request()
        jobs.on_request("rms.test", first)
        newer = JobRequest(**{**first.__dict__, "image_token": "n" * 43})
        jobs.on_request("rms.test", newer)
        path, request = jobs.image_of(JOB)
        self.assertEqual(request.image_token, "n" * 43)

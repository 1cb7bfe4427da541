"""Tests for remotecomm.maintenance (lifecycle and service): S121–S125 on the manager."""

import hashlib
from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.xmlstream import TimeoutError

from remotecomm.accounts.login import Caller
from remotecomm.maintenance import lifecycle as jl
from remotecomm.maintenance.firmware import DownloadRefused, FirmwareError, FirmwareImages
from remotecomm.maintenance.messages import JobProgress, JobResult
from remotecomm.maintenance.service import JobError, JobService
from remotecomm.sessions.messages import MessageRefused, SettingSpec
from remotecomm.store.accounts import insert_unit
from remotecomm.store.audit import audit_records
from remotecomm.store.devices import insert_device, record_hello
from remotecomm.store.schema import jobs
from remotecomm.testing.fakes import migrated_inline_store
from remotecomm.testing.xmpp import parse
from remotecomm.xmpp.payloads import decode, encode

S = 1_000_000
T0 = 1_800_000_000
ALICE = Caller(user_id="alice", unit_id="acme", role="technician", terminal_id="t-1")
GINA = Caller(user_id="gina", unit_id="globex", role="technician", terminal_id="t-2")
SETTINGS = [SettingSpec("sleep_minutes", "int", 1, 240).to_json(),
            SettingSpec("language", "choice", choices=("en", "de")).to_json()]


class FakeDevices:
    """Devices as the service sees them; requests go through the XMPP codec."""

    def __init__(self):
        self.link_up = True
        self.reachable = {"mfp-1", "gx-1"}
        self.sent = []
        self.answer = lambda: succeed(None)

    def is_reachable(self, device_id):
        return device_id in self.reachable

    def send(self, device_id, message):
        self.sent.append((device_id, decode(parse(
            f"<iq type='set'>{encode(message).toXml()}</iq>"))))
        if device_id not in self.reachable:
            return fail(TimeoutError("no answer"))
        return self.answer()


class LifecycleTests(SynchronousTestCase):
    def test_paths(self):
        job = jl.create("job-1", 0)
        self.assertEqual(job.state, jl.QUEUED)
        running = jl.accepted(jl.sent(job, 1))
        self.assertEqual((running.state, running.answer_deadline_us),
                         (jl.RUNNING, 1 + jl.ANSWER_WITHIN_US))
        self.assertEqual(jl.deadline_passed(running, jl.ANSWER_WITHIN_US + 1).state,
                         jl.TIMED_OUT)
        self.assertEqual(jl.finished(running, 5, "done", None, None, "{}").state, jl.DONE)
        self.assertEqual(jl.unreachable(job, 1, "gone").state, jl.FAILED)
        waiting = jl.create("job-2", 0, wait_online_us=10)
        self.assertEqual(jl.unreachable(jl.sent(waiting, 1), 2, "gone").state, jl.QUEUED)
        self.assertEqual(jl.deadline_passed(waiting, 10).error_code, "device-offline")
        self.assertEqual(jl.cancel(waiting, 3).state, jl.CANCELLED)
        with self.assertRaises(jl.InvalidJobTransition):
            jl.cancel(running, 3)
        self.assertEqual(jl.create("job-3", 0, 10**15).wait_until_us, jl.MAX_WAIT_ONLINE_US)


class JobServiceTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        for unit in ("acme", "globex"):
            self.store.run_sync(insert_unit, unit, unit, "UTC", 0)
        for device, unit in (("mfp-1", "acme"), ("mfp-2", "acme"), ("gx-1", "globex")):
            self.store.run_sync(insert_device, device, unit, "Front desk", "M", 0)
            self.store.run_sync(record_hello, device, "0.1", 1, [], 0, "4.2.1", SETTINGS, 1)
        self.devices = FakeDevices()
        self.service = JobService(self.store, self.clock, self.devices)

    def wait(self, coroutine):
        return self.successResultOf(Deferred.fromCoroutine(coroutine))

    def refused(self, coroutine, kind=JobError):
        return self.failureResultOf(Deferred.fromCoroutine(coroutine), kind).value

    def create(self, action="counters", key=None, value=None, device="mfp-1", caller=ALICE,
               wait=None):
        return self.service.create(caller, device, action, key, value, wait)

    def test_a_job_is_sent_and_its_result_filed(self):
        job = self.wait(self.create("config-set", "sleep_minutes", "30"))
        self.assertEqual(job["state"], "running")
        [(device, request)] = self.devices.sent
        self.assertEqual((device, request.action, request.key, request.value),
                         ("mfp-1", "config-set", "sleep_minutes", "30"))
        self.wait(self.service.on_result("mfp-1", JobResult(job["job_id"], "done", T0 * S,
                                                            result='{"sleep_minutes": 30}'),
                                         "mfp-1@d/agent"))
        done = self.wait(self.service.get(ALICE, job["job_id"]))
        self.assertEqual((done["state"], done["result"]), ("done", {"sleep_minutes": 30}))
        kinds = [r["kind"] for r in self.store.run_sync(audit_records, None)]
        self.assertEqual(kinds.count("job-created") + kinds.count("job-finished"), 2)

    def test_with_the_xmpp_link_down_a_job_fails_saying_so_or_waits(self):
        """The manager knows its own link is down: a clear error, or a wait if asked."""
        self.devices.link_up = False
        self.devices.reachable = set()
        error = self.refused(self.create())
        self.assertEqual((error.status, error.code, error.extra["job"]["state"]),
                         (503, "xmpp-link-down", "failed"))
        waiting = self.wait(self.create(wait=600))
        self.assertEqual(waiting["state"], "queued")
        self.devices.link_up, self.devices.reachable = True, {"mfp-1"}
        self.wait(self.service.device_returned("mfp-1"))  # its hello after the link is back
        self.assertEqual(self.wait(self.service.get(ALICE, waiting["job_id"]))["state"],
                         "running")

    def test_a_restart_has_longer_to_report_back(self):
        job = self.wait(self.create("restart"))
        self.clock.advance(61)
        self.wait(self.service.sweep())
        self.assertEqual(self.wait(self.service.get(ALICE, job["job_id"]))["state"], "running")
        self.clock.advance(60)
        self.wait(self.service.sweep())
        self.assertEqual(self.wait(self.service.get(ALICE, job["job_id"]))["state"],
                         "timed-out")

    def test_bad_parameters_send_nothing(self):
        for args in (("reboot",), ("config-set", "sleep_minutes", "999"),
                     ("config-set", "colour", "red"), ("config-get",),
                     ("counters", "sleep_minutes"), ("config-set", "language", "fr")):
            error = self.refused(self.create(*args))
            self.assertEqual((error.status, error.code), (400, "invalid-parameters"), args)
        self.assertEqual(self.devices.sent, [])

    def test_another_units_device_looks_unknown(self):
        for device in ("gx-1", "nope"):
            error = self.refused(self.create(device=device))
            self.assertEqual((error.status, error.code), (404, "device-not-found"))
        job = self.wait(self.create(device="gx-1", caller=GINA))
        error = self.refused(self.service.get(ALICE, job["job_id"]))
        self.assertEqual(error.code, "job-not-found")

    def test_offline_fails_at_once_unless_asked_to_wait(self):
        error = self.refused(self.create(device="mfp-2"))
        self.assertEqual((error.status, error.code, error.extra["job"]["state"]),
                         (409, "device-offline", "failed"))
        job = self.wait(self.create(device="mfp-2", wait=3600))
        self.assertEqual(job["state"], "queued")
        self.devices.reachable.add("mfp-2")
        self.wait(self.service.device_returned("mfp-2"))
        self.assertEqual(self.wait(self.service.get(ALICE, job["job_id"]))["state"], "running")
        self.devices.reachable.discard("mfp-2")
        waiting = self.wait(self.create(device="mfp-2", wait=30))
        self.clock.advance(31)
        self.wait(self.service.sweep())
        self.assertEqual(self.wait(self.service.get(ALICE, waiting["job_id"]))["error_code"],
                         "device-offline")

    def test_a_device_that_refuses_the_request_fails_the_job(self):
        """An XMPP error answer (not a missing device) is the device's refusal: failed, with
        its condition, even for a job that may wait."""
        from twisted.words.protocols.jabber import error
        self.devices.answer = lambda: fail(error.StanzaError("resource-constraint",
                                                             text="too many jobs"))
        job = self.wait(self.create(wait=600))
        self.assertEqual((job["state"], job["error_code"]), ("failed", "device-refused"))
        self.assertIn("resource-constraint too many jobs", job["error"])

    def test_no_answer_times_out_and_late_results_change_nothing(self):
        job = self.wait(self.create())
        self.clock.advance(61)
        self.wait(self.service.sweep())
        self.assertEqual(self.wait(self.service.get(ALICE, job["job_id"]))["state"],
                         "timed-out")
        self.wait(self.service.on_result("mfp-1", JobResult(job["job_id"], "done", 1,
                                                            result="{}"), "x"))
        self.assertEqual(self.wait(self.service.get(ALICE, job["job_id"]))["state"],
                         "timed-out")

    def test_results_for_jobs_never_given_are_refused(self):
        job = self.wait(self.create())
        for device, job_id in (("mfp-2", job["job_id"]), ("mfp-1", "job-" + "x" * 22)):
            refusal = self.refused(self.service.on_result(
                device, JobResult(job_id, "done", 1, result="{}"), "x"), MessageRefused)
            self.assertEqual(refusal.code, "not-found")

    def test_open_jobs_are_sent_again_by_id_when_the_device_returns(self):
        """After a manager restart the device's hello brings the same job ID again."""
        job = self.wait(self.create())
        restarted = JobService(self.store, self.clock, self.devices)
        self.wait(restarted.device_returned("mfp-1"))
        self.assertEqual([r.job_id for _, r in self.devices.sent], [job["job_id"]] * 2)

    def test_only_a_queued_job_can_be_cancelled(self):
        queued = self.wait(self.create(device="mfp-2", wait=60))
        self.assertEqual(self.wait(self.service.cancel(ALICE, queued["job_id"]))["state"],
                         "cancelled")
        self.clock.advance(1)
        running = self.wait(self.create())
        self.assertEqual(self.refused(self.service.cancel(ALICE, running["job_id"])).code,
                         "job-not-queued")
        listed = self.wait(self.service.list(ALICE))
        self.assertEqual({j["job_id"] for j in listed}, {queued["job_id"], running["job_id"]})
        self.assertEqual([j["device_id"] for j in listed], ["mfp-1", "mfp-2"])  # newest first

    def test_a_running_job_sent_again_keeps_its_deadline_and_a_failed_resend_fails_nothing(self):
        """A hello while a job runs (a device describing new firmware, say) sends it again;
        the device has it, so nothing about the job changes, even if the re-send fails."""
        job = self.wait(self.create())
        self.clock.advance(30)
        self.devices.reachable.discard("mfp-1")
        self.wait(self.service.device_returned("mfp-1"))
        again = self.wait(self.service.get(ALICE, job["job_id"]))
        self.assertEqual(again["state"], "running")
        self.clock.advance(31)
        self.wait(self.service.sweep())
        self.assertEqual(self.wait(self.service.get(ALICE, job["job_id"]))["state"],
                         "timed-out")


class FirmwareJobTests(SynchronousTestCase):
    """Firmware images, firmware jobs and their one-time download references."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        folder = Path(self.mktemp())
        self.store = migrated_inline_store(folder / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        for unit in ("acme", "globex"):
            self.store.run_sync(insert_unit, unit, unit, "UTC", 0)
        for device, unit in (("mfp-1", "acme"), ("gx-1", "globex")):
            self.store.run_sync(insert_device, device, unit, "Front desk", "M", 0)
            self.store.run_sync(record_hello, device, "0.1", 1, [], 0, "4.2.1", [], 1)
        self.devices = FakeDevices()
        self.images = FirmwareImages(self.store, self.clock, folder / "firmware",
                                     "https://manager.example:8443/")
        self.service = JobService(self.store, self.clock, self.devices, self.images)
        self.image = self.upload(b"\x7fELF" * 1000, "4.3.0")

    def wait(self, coroutine):
        return self.successResultOf(Deferred.fromCoroutine(coroutine))

    def refused(self, coroutine, kind=JobError):
        return self.failureResultOf(Deferred.fromCoroutine(coroutine), kind).value

    def upload(self, data: bytes, version: str, caller=ALICE) -> dict:
        def finish(path: Path):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return len(data), hashlib.sha256(data).hexdigest()

        return self.wait(self.images.add(caller, version, finish))

    def install(self) -> tuple[dict, object]:
        job = self.wait(self.service.create(ALICE, "mfp-1", "firmware", None, None, None,
                                            self.image["image_id"]))
        return job, self.devices.sent[-1][1]

    def test_the_request_names_a_reference_never_the_image(self):
        job, request = self.install()
        self.assertEqual((job["state"], job["image_id"]), ("running", self.image["image_id"]))
        self.assertEqual(request.image_url, "https://manager.example:8443/api/v1/"
                                            f"firmware-downloads/{job['job_id']}")
        self.assertEqual((request.image_sha256, request.image_size, request.image_version),
                         (self.image["sha256"], 4000, "4.3.0"))
        self.assertEqual(request.deadline_us, (T0 + 900) * S)
        found = self.wait(self.images.open_download(job["job_id"], request.image_token))
        self.assertEqual((found.size, found.path.read_bytes()[:4]), (4000, b"\x7fELF"))
        kinds = [r["kind"] for r in self.store.run_sync(audit_records, None)]
        self.assertIn("firmware-uploaded", kinds)

    def test_a_used_wrong_or_expired_reference_is_refused_and_audited(self):
        job, request = self.install()
        wrong = self.failureResultOf(Deferred.fromCoroutine(
            self.images.open_download(job["job_id"], "x" * 43)), DownloadRefused).value
        self.assertEqual((wrong.status, wrong.code), (403, "download-refused"))
        self.wait(self.images.downloaded(job["job_id"]))
        used = self.failureResultOf(Deferred.fromCoroutine(
            self.images.open_download(job["job_id"], request.image_token)),
            DownloadRefused).value
        self.assertEqual((used.status, used.code), (410, "reference-used"))
        other, other_request = self.install()
        self.clock.advance(901)
        expired = self.failureResultOf(Deferred.fromCoroutine(
            self.images.open_download(other["job_id"], other_request.image_token)),
            DownloadRefused).value
        self.assertEqual((expired.status, expired.code), (410, "reference-expired"))
        unknown = self.failureResultOf(Deferred.fromCoroutine(
            self.images.open_download("job-" + "y" * 22, request.image_token)),
            DownloadRefused).value
        self.assertEqual(unknown.status, 404)
        reasons = [r["detail"]["reason"] for r in self.store.run_sync(audit_records, None)
                   if r["kind"] == "firmware-download-refused"]
        self.assertEqual(reasons, ["wrong-token", "used", "expired"])

    def test_an_image_is_deleted_with_its_file_but_not_while_a_job_installs_it(self):
        job, _ = self.install()
        image_id = self.image["image_id"]
        busy = self.failureResultOf(Deferred.fromCoroutine(
            self.images.delete(ALICE, image_id)), FirmwareError).value
        self.assertEqual((busy.status, busy.code), (409, "image-in-use"))
        self.store.run_sync(lambda c: c.execute(  # the job ends
            jobs.update().where(jobs.c.job_id == job["job_id"]).values(state="failed")))
        deleted = self.wait(self.images.delete(ALICE, image_id))
        self.assertEqual(deleted["version"], "4.3.0")
        self.assertFalse(self.images.path_of(image_id).exists())
        self.assertEqual(self.wait(self.images.list(ALICE)), [])
        again = self.failureResultOf(Deferred.fromCoroutine(
            self.images.delete(ALICE, image_id)), FirmwareError).value
        self.assertEqual((again.status, again.code), (404, "image-not-found"))
        (record,) = self.store.run_sync(audit_records, "firmware-deleted")
        self.assertEqual(record["detail"], {"image_id": image_id, "version": "4.3.0"})
        other = self.upload(b"x" * 10, "9.9.9", caller=GINA)  # another unit's: not found
        self.assertEqual(self.failureResultOf(Deferred.fromCoroutine(
            self.images.delete(ALICE, other["image_id"])), FirmwareError).value.code,
            "image-not-found")

    def test_a_new_download_ends_the_one_under_way(self):
        """A device that retries after a network break is served; the connection the
        manager had not seen break yet is ended."""
        job, request = self.install()
        ended = []
        first_over = self.images.start_download(job["job_id"], lambda: ended.append("first"))
        second_over = self.images.start_download(job["job_id"], lambda: ended.append("second"))
        self.assertEqual(ended, ["first"])
        first_over()  # its connection closes after it was replaced: the second stays
        self.images.start_download(job["job_id"], lambda: ended.append("third"))
        self.assertEqual(ended, ["first", "second"])
        second_over()
        self.wait(self.images.open_download(job["job_id"], request.image_token))

    def test_sending_again_replaces_the_reference(self):
        job, first = self.install()
        self.devices.reachable.discard("mfp-1")
        restarted = JobService(self.store, self.clock, self.devices, self.images)
        self.devices.reachable.add("mfp-1")
        self.store.run_sync(lambda c: c.execute(
            jobs.update().where(jobs.c.job_id == job["job_id"]).values(state="sent")))
        self.wait(restarted.device_returned("mfp-1"))
        second = self.devices.sent[-1][1]
        self.assertNotEqual(first.image_token, second.image_token)
        self.assertEqual(self.failureResultOf(Deferred.fromCoroutine(
            self.images.open_download(job["job_id"], first.image_token)),
            DownloadRefused).value.code, "download-refused")
        self.wait(self.images.open_download(job["job_id"], second.image_token))

    def test_progress_only_goes_forward_and_only_from_its_device(self):
        job, _ = self.install()
        for phase, percent in (("download", 40), ("download", 20), ("install", 10),
                               ("download", 90)):
            self.wait(self.service.on_progress("mfp-1", JobProgress(job["job_id"], phase,
                                                                    percent), "x"))
        shown = self.wait(self.service.get(ALICE, job["job_id"]))
        self.assertEqual(shown["progress"], {"phase": "install", "percent": 10})
        refusal = self.failureResultOf(Deferred.fromCoroutine(self.service.on_progress(
            "gx-1", JobProgress(job["job_id"], "install", 50), "x")), MessageRefused).value
        self.assertEqual(refusal.code, "not-found")

    def test_an_image_of_another_unit_or_none_is_refused(self):
        theirs = self.upload(b"gx", "1.0", caller=GINA)
        for image_id, code in ((theirs["image_id"], "image-not-found"),
                               ("fw-" + "z" * 22, "image-not-found")):
            error = self.refused(self.service.create(ALICE, "mfp-1", "firmware", None, None,
                                                     None, image_id))
            self.assertEqual((error.status, error.code), (404, code))
        for action, image_id in (("firmware", None), ("counters", self.image["image_id"])):
            error = self.refused(self.service.create(ALICE, "mfp-1", action, None, None, None,
                                                     image_id))
            self.assertEqual(error.code, "invalid-parameters")
        self.assertEqual([i["version"] for i in self.wait(self.images.list(ALICE))], ["4.3.0"])

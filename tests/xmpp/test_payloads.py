"""Tests for remotecomm.xmpp.payloads: hello and presence codecs."""

import json

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.identifiers import (APP_ID, JOB_ID, REQUEST_ID, SESSION_ID, SETTING_NAME, TOKEN,
                                    TOKEN_HASH)
from remotecomm.maintenance.messages import (ACTIONS, ERROR_CODES, MAX_FIRMWARE_BYTES,
                                             PROGRESS_PHASES, JobProgress, JobRequest, JobResult)
from remotecomm.sessions.messages import (MAX_REPORTS_ASKED, REFUSALS, ApprovalCancelled,
                                          ApprovalDecision, ApprovalRequest, EndSession, Hello,
                                          KeptReports, MessageRefused, ReportRequest, SessionReady,
                                          SessionReport, SettingSpec)
from remotecomm.testing.xmpp import parse
from remotecomm.xmpp.payloads import (NS_DEVICE, PayloadError, build_hello, decode,
                                      decode_kept_reports, encode, parse_hello, parse_presence,
                                      request_payload)

DOMAIN = "devices.test"


def hello_iq(payload: str) -> str:
    return f"<iq type='set' from='mfp-1@{DOMAIN}/agent' to='rms.test' id='1'>{payload}</iq>"


class HelloTests(SynchronousTestCase):
    """The hello a device sends after every (re)connect."""

    def test_round_trip(self):
        """What build_hello writes, parse_hello reads back."""
        hello = Hello(agent_version="1.2.3", envelope_version=1, apps=("web-server", "remote-panel"))
        iq = parse(hello_iq(build_hello(hello).toXml()))
        self.assertEqual(parse_hello(iq), hello)

    def test_wire_form(self):
        """The documented wire form parses."""
        iq = parse(hello_iq(f"<hello xmlns='{NS_DEVICE}' agent-version='0.1.0' "
                            f"envelope-version='1'><app id='web-server'/></hello>"))
        self.assertEqual(parse_hello(iq), Hello("0.1.0", 1, ("web-server",)))

    def assertRefused(self, payload: str, condition: str):
        with self.assertRaises(PayloadError) as e:
            parse_hello(parse(hello_iq(payload)))
        self.assertEqual(e.exception.condition, condition)
        return e.exception

    def test_unknown_protocol_version(self):
        """A payload of urn:remotecomm:device:2 is refused, naming the version we speak."""
        error = self.assertRefused("<hello xmlns='urn:remotecomm:device:2' agent-version='9' "
                                   "envelope-version='1'/>", "feature-not-implemented")
        self.assertIn(NS_DEVICE, error.text)

    def test_unknown_envelope_version(self):
        """An envelope version the relay does not speak is not acceptable."""
        error = self.assertRefused(f"<hello xmlns='{NS_DEVICE}' agent-version='1' "
                                   f"envelope-version='7'/>", "not-acceptable")
        self.assertIn("envelope version 7", error.text)

    def test_malformed_hellos(self):
        """Missing or bad attributes and children are bad requests."""
        for payload in (
            f"<hello xmlns='{NS_DEVICE}' envelope-version='1'/>",
            f"<hello xmlns='{NS_DEVICE}' agent-version='1'/>",
            f"<hello xmlns='{NS_DEVICE}' agent-version='1' envelope-version='one'/>",
            f"<hello xmlns='{NS_DEVICE}' agent-version='1 2' envelope-version='1'/>",
            f"<hello xmlns='{NS_DEVICE}' agent-version='1' envelope-version='1'>"
            f"<app id='Bad App'/></hello>",
            f"<hello xmlns='{NS_DEVICE}' agent-version='1' envelope-version='1'>"
            f"<app id='a'/><app id='a'/></hello>",
            f"<hello xmlns='{NS_DEVICE}' agent-version='1' envelope-version='1'><x/></hello>",
            f"<hello xmlns='{NS_DEVICE}' agent-version='1' envelope-version='99999'/>",
        ):
            self.assertRefused(payload, "bad-request")

    def test_too_many_apps(self):
        """The app list is bounded."""
        apps = "".join(f"<app id='app-{n}'/>" for n in range(33))
        self.assertRefused(f"<hello xmlns='{NS_DEVICE}' agent-version='1' "
                           f"envelope-version='1'>{apps}</hello>", "policy-violation")

    def test_foreign_namespace_and_two_payloads(self):
        """Not our namespace, or more than one payload: refused."""
        self.assertRefused("<hello xmlns='urn:other' agent-version='1' envelope-version='1'/>",
                           "feature-not-implemented")
        with self.assertRaises(PayloadError) as e:
            request_payload(parse(hello_iq(f"<a xmlns='{NS_DEVICE}'/><b xmlns='{NS_DEVICE}'/>")))
        self.assertEqual(e.exception.condition, "bad-request")


class PresenceTests(SynchronousTestCase):
    """Which presence stanzas mean a device came or went."""

    def presence(self, attrs: str):
        return parse_presence(parse(f"<presence {attrs}/>"), DOMAIN)

    def test_available_and_unavailable(self):
        """Plain presence is up, type unavailable is down."""
        up = self.presence(f"from='mfp-1@{DOMAIN}/agent' to='rms.test'")
        self.assertEqual((up.device_id, up.resource, up.available), ("mfp-1", "agent", True))
        down = self.presence(f"from='mfp-1@{DOMAIN}/agent' type='unavailable'")
        self.assertFalse(down.available)

    def test_ignored_presence(self):
        """Other domains, bare JIDs, odd types, invalid device IDs and garbage mean nothing."""
        for attrs in ("from='mfp-1@other.test/agent'",
                      f"from='mfp-1@{DOMAIN}'",
                      f"from='mfp-1@{DOMAIN}/agent' type='subscribe'",
                      f"from='mfp-1@{DOMAIN}/agent' type='probe'",
                      f"from='mfp-1@{DOMAIN}/agent' type='error'",
                      f"from='MFP 1@{DOMAIN}/agent'",
                      "from='@@@'",
                      ""):
            self.assertIsNone(self.presence(attrs), attrs)


class SessionPayloadTests(SynchronousTestCase):
    """Approval request (S142), decision (S144), session-ready (S149), end-session (S265)."""

    def iq(self, element):
        return parse(f"<iq type='set' from='rms.test' id='1'>{element.toXml()}</iq>")

    def test_round_trips(self):
        """Each message reads back as it was written, through the one table."""
        messages = [
            ApprovalRequest("r" * 22, "web-server", "alice", "Alice Smith", "acme",
                            "ACME Corp <Berlin>", 1_800_000_000_000_000),
            ApprovalDecision("r" * 22, True, "Olga Ö", False),
            ApprovalDecision("r" * 22, False, "bench", True),
            SessionReady("r" * 22, "s" * 32, "t" * 43, "wss://relay.test:443/relay",
                         "web-server", 1_800_000_000_000_000),
            EndSession("r" * 22, "s" * 32),
            Hello("1.2.3", 1, ("web-server",)),
        ]
        for message in messages:
            self.assertEqual(decode(self.iq(encode(message))), message)

    def test_wire_form_of_a_decision(self):
        """The documented attribute names, and test-approver defaults to false."""
        decision = decode(parse(f"<iq type='set'><approval-decision xmlns='{NS_DEVICE}' "
                                f"request-id='{'r' * 22}' answer='no' operator='o'/></iq>"))
        self.assertEqual(decision, ApprovalDecision("r" * 22, False, "o", False))
        element = encode(ApprovalDecision("r" * 22, True, "o", True))
        self.assertEqual((element["answer"], element["test-approver"]), ("yes", "true"))

    def test_malformed_decisions(self):
        """Answers other than yes/no, missing operators, odd marks: bad-request."""
        for attrs in ("request-id='rrrrrrrrrrrrrrrrrrrr' answer='maybe' operator='o'",
                      "request-id='rrrrrrrrrrrrrrrrrrrr' answer='yes'",
                      "request-id='short' answer='yes' operator='o'",
                      "request-id='rrrrrrrrrrrrrrrrrrrr' answer='yes' operator='o' "
                      "test-approver='perhaps'"):
            with self.assertRaises(PayloadError) as e:
                decode(parse(
                    f"<iq type='set'><approval-decision xmlns='{NS_DEVICE}' {attrs}/></iq>"))
            self.assertEqual(e.exception.condition, "bad-request", attrs)

    def test_session_ready_refuses_odd_tokens_and_urls(self):
        """The token must look like one of ours and the relay URL like a WebSocket URL."""
        good = {"request-id": "r" * 22, "session-id": "s" * 32, "token": "t" * 43,
                "relay-url": "wss://relay.test/relay", "app": "web-server",
                "join-deadline-us": "1"}
        for key, bad in (("token", "short"), ("relay-url", "http://x"), ("relay-url", "wss://a b"),
                         ("session-id", "s"), ("join-deadline-us", "-1")):
            attrs = " ".join(f"{k}='{bad if k == key else v}'" for k, v in good.items())
            with self.assertRaises(PayloadError):
                decode(parse(f"<iq type='set'><session-ready xmlns='{NS_DEVICE}' {attrs}/></iq>"))

    def test_wrong_version_and_unknown_payloads(self):
        """A future version of a payload, or a name we do not know: feature-not-implemented."""
        for payload in ("<approval-request xmlns='urn:remotecomm:device:2'/>",
                        f"<reboot xmlns='{NS_DEVICE}'/>"):
            with self.assertRaises(PayloadError) as e:
                decode(parse(f"<iq type='set'>{payload}</iq>"))
            self.assertEqual(e.exception.condition, "feature-not-implemented")

    def test_end_session_needs_its_ids(self):
        with self.assertRaises(PayloadError):
            decode(parse(f"<iq type='set'><end-session xmlns='{NS_DEVICE}' "
                         f"request-id='x'/></iq>"))

    def test_every_refusal_has_an_xmpp_condition(self):
        """A transport-free refusal always becomes a defined stanza error."""
        for code in REFUSALS:
            self.assertEqual(PayloadError.from_refusal(MessageRefused(code, "t")).text, "t")


names = st.from_regex(r"[a-z][a-z0-9 .-]{0,40}", fullmatch=True)
instants = st.integers(min_value=0, max_value=2**62)
versions = st.from_regex(r"[0-9A-Za-z.+~_-]{1,32}", fullmatch=True)
_setting_names = st.from_regex(SETTING_NAME, fullmatch=True)
setting_specs = st.one_of(
    st.builds(lambda n, a, b: SettingSpec(n, "int", min(a, b), max(a, b)), _setting_names,
              st.integers(-10**6, 10**6), st.integers(-10**6, 10**6)),
    st.builds(lambda n: SettingSpec(n, "bool"), _setting_names),
    st.builds(lambda n, c: SettingSpec(n, "choice", choices=tuple(c)), _setting_names,
              st.lists(st.from_regex(r"[a-z0-9._-]{1,10}", fullmatch=True), min_size=1,
                       max_size=5, unique=True)),
    st.builds(lambda n, m: SettingSpec(n, "text", max_length=m), _setting_names,
              st.integers(1, 200)))
reports = st.builds(SessionReport, request_id=st.from_regex(REQUEST_ID, fullmatch=True),
                    session_id=st.from_regex(SESSION_ID, fullmatch=True),
                    app_id=st.from_regex(APP_ID, fullmatch=True), agent_version=versions,
                    operator=names, started_us=instants, ended_us=st.none() | instants,
                    end_code=st.none() | st.integers(min_value=0, max_value=99999),
                    end_reason=names, bytes_to_device=st.none() | instants,
                    bytes_from_device=st.none() | instants,
                    reported_us=instants, app_version=st.none() | names,
                    firmware_version=st.none() | versions,
                    errors=st.none() | st.integers(min_value=0, max_value=10**9 - 1))


class MessageCodecPropertyTests(SynchronousTestCase):
    """Every message of the table reads back as written (hypothesis)."""

    def roundtrip(self, message):
        iq = parse(f"<iq type='set'>{encode(message).toXml()}</iq>")
        self.assertEqual(decode(iq), message)

    @given(st.builds(ApprovalCancelled, request_id=st.from_regex(REQUEST_ID, fullmatch=True)))
    def test_approval_cancelled(self, message):
        self.roundtrip(message)

    @settings(max_examples=200)
    @given(reports)
    def test_session_report(self, message):
        self.roundtrip(message)

    @given(st.builds(Hello, agent_version=versions, envelope_version=st.just(1),
                     apps=st.lists(st.from_regex(APP_ID, fullmatch=True), max_size=5,
                                   unique=True).map(tuple),
                     firmware_version=st.none() | versions,
                     settings=st.lists(setting_specs, max_size=6, unique_by=lambda s: s.name)
                     .map(tuple),
                     settings_version=st.none() | st.integers(0, 999999)))
    def test_hello(self, message):
        self.roundtrip(message)

    @given(st.builds(JobRequest, job_id=st.from_regex(JOB_ID, fullmatch=True),
                     action=st.sampled_from([a for a in ACTIONS if a != "firmware"]),
                     deadline_us=instants,
                     key=st.none() | st.from_regex(SETTING_NAME, fullmatch=True),
                     value=st.none() | names))
    def test_job_request(self, message):
        self.roundtrip(message)

    @given(st.builds(JobRequest, job_id=st.from_regex(JOB_ID, fullmatch=True),
                     action=st.just("firmware"), deadline_us=instants,
                     image_url=st.from_regex(r"https://[a-z0-9.-]{1,30}(:[0-9]{1,5})?/[A-Za-z0-9/_-]"
                                             r"{0,60}", fullmatch=True),
                     image_token=st.from_regex(TOKEN, fullmatch=True),
                     image_sha256=st.from_regex(TOKEN_HASH, fullmatch=True),
                     image_size=st.integers(1, MAX_FIRMWARE_BYTES), image_version=versions))
    def test_firmware_job_request(self, message):
        self.roundtrip(message)

    def test_a_firmware_request_without_its_image_is_refused(self):
        iq = parse("<iq type='set'><job-request xmlns='urn:remotecomm:device:1' "
                   "job-id='job-AAAAAAAAAAAAAAAAAAAAAA' action='firmware' deadline-us='5'/></iq>")
        self.assertRaises(PayloadError, decode, iq)

    @given(st.builds(JobProgress, job_id=st.from_regex(JOB_ID, fullmatch=True),
                     phase=st.sampled_from(PROGRESS_PHASES), percent=st.integers(0, 100)))
    def test_job_progress(self, message):
        self.roundtrip(message)

    def test_progress_over_a_hundred_percent_is_refused(self):
        iq = parse("<iq type='set'><job-progress xmlns='urn:remotecomm:device:1' "
                   "job-id='job-AAAAAAAAAAAAAAAAAAAAAA' phase='install' percent='101'/></iq>")
        self.assertRaises(PayloadError, decode, iq)

    @settings(max_examples=100)
    @given(st.from_regex(JOB_ID, fullmatch=True), instants,
           st.one_of(st.tuples(st.just("done"), st.none(), st.none(),
                               st.none() | st.recursive(
                                   st.none() | st.booleans() | st.integers() | st.text(),
                                   lambda inner: st.lists(inner, max_size=3)
                                   | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                                   max_leaves=8).map(json.dumps)),
                     st.tuples(st.just("failed"), st.sampled_from(ERROR_CODES),
                               st.none() | names, st.none())))
    def test_job_result(self, job_id, finished_us, outcome):
        outcome, error_code, error, result = outcome
        self.roundtrip(JobResult(job_id, outcome, finished_us, error_code, error, result))

    @given(st.builds(ReportRequest, request_ids=st.lists(
        st.from_regex(REQUEST_ID, fullmatch=True), min_size=1, max_size=MAX_REPORTS_ASKED,
        unique=True).map(tuple)))
    def test_report_request(self, message):
        self.roundtrip(message)

    @settings(max_examples=50)
    @given(st.lists(reports, max_size=5, unique_by=lambda r: r.request_id))
    def test_kept_reports(self, kept):
        """The answer to a report request reads back as written, as a result IQ."""
        asked = ReportRequest(request_ids=tuple(r.request_id for r in kept) or ("r" * 22,))
        answer = KeptReports(reports=tuple(kept))
        result = parse(f"<iq type='result'>{encode(answer).toXml()}</iq>")
        self.assertEqual(decode_kept_reports(result, asked), answer)


class KeptReportsTests(SynchronousTestCase):
    """A device's answer is checked against what it was asked."""

    report = SessionReport(request_id="a" * 22, session_id="s" * 32, app_id="web-server",
                           agent_version="0.1", operator="op", started_us=1, ended_us=None,
                           end_code=None, end_reason="agent-stopped", bytes_to_device=0,
                           bytes_from_device=0, reported_us=2)

    def answer(self, *reports, extra=""):
        inner = "".join(encode(r).toXml() for r in reports) + extra
        return parse(f"<iq type='result'><kept-reports xmlns='{NS_DEVICE}'>{inner}"
                     f"</kept-reports></iq>")

    def test_a_report_not_asked_for_or_twice_is_refused(self):
        for asked, reports in ((("b" * 22,), (self.report,)),
                               (("a" * 22,), (self.report, self.report))):
            with self.assertRaises(PayloadError):
                decode_kept_reports(self.answer(*reports), ReportRequest(request_ids=asked))

    def test_other_elements_and_empty_results_are_refused(self):
        asked = ReportRequest(request_ids=("a" * 22,))
        for result in (self.answer(extra=f"<hello xmlns='{NS_DEVICE}'/>"),
                       parse("<iq type='result'/>")):
            with self.assertRaises(PayloadError):
                decode_kept_reports(result, asked)

    def test_an_unknown_end_reads_as_none(self):
        asked = ReportRequest(request_ids=("a" * 22,))
        self.assertEqual(decode_kept_reports(self.answer(self.report), asked).reports,
                         (self.report,))

    def test_request_id_lists_are_bounded_and_distinct(self):
        for ids in ("", "a" * 22 + " " + "a" * 22, " ".join(f"{n:022d}" for n in range(51)),
                    "a" * 22 + "  " + "b" * 22, "not/an/id"):
            with self.assertRaises(PayloadError, msg=ids):
                decode(parse(f"<iq type='get'><report-request xmlns='{NS_DEVICE}' "
                             f"request-ids='{ids}'/></iq>"))


class MaintenancePayloadTests(SynchronousTestCase):
    """Settings in the hello and job payloads are checked before anything acts on them."""

    def test_settings_that_do_not_fit_their_kind_are_refused(self):
        for setting in ("<setting name='a' kind='int' min='5'/>",
                        "<setting name='a' kind='int' min='5' max='1'/>",
                        "<setting name='a' kind='choice'/>",
                        "<setting name='a' kind='bool' choices='x'/>",
                        "<setting name='a' kind='text'/>",
                        "<setting name='a' kind='text' max-length='999'/>",
                        "<setting name='Bad Name' kind='bool'/>",
                        "<setting name='a' kind='float'/>",
                        "<setting name='a' kind='bool'/><setting name='a' kind='bool'/>"):
            with self.assertRaises(PayloadError, msg=setting) as e:
                parse_hello(parse(hello_iq(f"<hello xmlns='{NS_DEVICE}' agent-version='1' "
                                           f"envelope-version='1'>{setting}</hello>")))
            self.assertEqual(e.exception.condition, "bad-request", setting)

    def test_job_payloads_are_checked(self):
        job = "job-" + "a" * 22
        for payload, condition in (
                (f"<job-request job-id='{job}' action='format-disk' deadline-us='1'/>",
                 "bad-request"),
                ("<job-request job-id='x' action='counters' deadline-us='1'/>", "bad-request"),
                (f"<job-result job-id='{job}' outcome='done' finished-us='1'>not json"
                 f"</job-result>", "bad-request"),
                (f"<job-result job-id='{job}' outcome='done' finished-us='1'>"
                 f"\"{'x' * 70000}\"</job-result>", "policy-violation"),
                (f"<job-result job-id='{job}' outcome='failed' finished-us='1' "
                 f"error-code='bored'/>", "bad-request"),
                (f"<job-result job-id='{job}' outcome='failed' finished-us='1'/>",
                 "bad-request"),
                (f"<job-result job-id='{job}' outcome='done' finished-us='1'>"
                 f"{'[' * 5000}</job-result>", "policy-violation")):
            with self.assertRaises(PayloadError, msg=payload) as e:
                decode(parse(f"<iq type='set'>{payload}</iq>"
                             .replace("<job-request", f"<job-request xmlns='{NS_DEVICE}'")
                             .replace("<job-result", f"<job-result xmlns='{NS_DEVICE}'")))
            self.assertEqual(e.exception.condition, condition, payload)

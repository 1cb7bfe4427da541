"""Tests for remotecomm.relay.envelope: the codec, round trips and arbitrary input."""

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.identifiers import APP_ID, SESSION_ID
from remotecomm.relay import envelope as env

app_ids = st.from_regex(APP_ID, fullmatch=True)
session_ids = st.from_regex(SESSION_ID, fullmatch=True)
streams = st.integers(min_value=1, max_value=env.MAX_STREAM_ID)


class RoundTripTests(SynchronousTestCase):
    """What is encoded decodes to the same thing."""

    @given(streams, app_ids, session_ids, st.binary(max_size=2048), st.booleans())
    def test_open(self, stream_id, app_id, session_id, head, raw):
        frame = env.decode(env.encode_open(stream_id, app_id, session_id, head, raw=raw))
        self.assertEqual((frame.kind, frame.stream_id, frame.app_id, frame.session_id,
                          frame.data),
                         (env.RAW_OPEN if raw else env.OPEN, stream_id, app_id, session_id, head))

    @given(streams, st.binary(max_size=4096))
    def test_data(self, stream_id, data):
        frame = env.decode(env.encode_data(stream_id, data))
        self.assertEqual((frame.kind, frame.stream_id, frame.data), (env.DATA, stream_id, data))

    @given(streams, st.integers(min_value=1, max_value=2**32 - 1))
    def test_window(self, stream_id, increment):
        frame = env.decode(env.encode_window(stream_id, increment))
        self.assertEqual((frame.kind, frame.increment), (env.WINDOW, increment))

    @given(streams, st.integers(min_value=0, max_value=65535), st.text(max_size=300))
    def test_reset(self, stream_id, code, reason):
        frame = env.decode(env.encode_reset(stream_id, code, reason))
        self.assertEqual((frame.kind, frame.code), (env.RESET, code))
        self.assertTrue(reason.startswith(frame.reason))

    def test_end_and_hello(self):
        self.assertEqual(env.decode(env.encode_end(7)), env.Frame(env.END, 7))
        frame = env.decode(env.encode_hello({"agent_version": "0.1.0", "apps": ["web-server"]}))
        self.assertEqual((frame.kind, frame.stream_id, frame.info["apps"]),
                         (env.HELLO, 0, ["web-server"]))


class MalformedTests(SynchronousTestCase):
    """Arbitrary bytes never raise anything but EnvelopeError."""

    @settings(max_examples=500)
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes(self, message):
        for check in (env.decode, env.check_frame):
            try:
                check(message)
            except env.EnvelopeError:
                pass

    @settings(max_examples=300)
    @given(st.integers(1, 7), st.integers(0, 2**32 - 1), st.binary(max_size=300))
    def test_arbitrary_bodies_of_valid_headers(self, kind, stream_id, body):
        try:
            env.decode(env.HEADER.pack(env.VERSION, kind, stream_id) + body)
        except env.EnvelopeError:
            pass

    def test_specific_refusals(self):
        """Wrong version, unknown kind, stream 0 misuse, oversized data are refused."""
        for message in (b"", b"\x01\x02\x00",
                        env.HEADER.pack(2, env.DATA, 1),
                        env.HEADER.pack(1, 99, 1),
                        env.HEADER.pack(1, env.DATA, 0),
                        env.HEADER.pack(1, env.HELLO, 5) + b"{}",
                        env.HEADER.pack(1, env.DATA, 1) + b"x" * (env.MAX_DATA + 1),
                        env.HEADER.pack(1, env.WINDOW, 1) + b"\x00\x00\x00\x00",
                        env.HEADER.pack(1, env.END, 1) + b"x",
                        env.HEADER.pack(1, env.OPEN, 1) + b"\x03ab",
                        env.HEADER.pack(1, env.HELLO, 0) + b"[1]"):
            with self.assertRaises(env.EnvelopeError, msg=message[:20]):
                env.decode(message)

    def test_relay_check_does_not_read_bodies(self):
        """The relay's check passes frames whose body it does not understand."""
        self.assertEqual(env.check_frame(env.HEADER.pack(1, env.DATA, 9) + b"\xff" * 10),
                         (env.DATA, 9))
        self.assertEqual(env.check_frame(env.HEADER.pack(1, env.OPEN, 3) + b"junk"),
                         (env.OPEN, 3))

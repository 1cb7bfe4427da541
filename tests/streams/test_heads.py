"""Tests for remotecomm.streams.heads: one HTTP head codec at both ends of a stream."""

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.streams.heads import (HOP_BY_HOP, MAX_HEAD, BadHead, RequestHead, ResponseHead,
                                      decode_request, decode_response, encode_request,
                                      encode_response, end_to_end)

REQUEST = RequestHead(b"POST", b"/a?b=1", ((b"host", b"mfp-1-abcd.localhost:9000"),
                                           (b"content-length", b"3"),
                                           (b"cookie", b"sid=42")))
RESPONSE = ResponseHead(302, b"Found", ((b"location", b"http://127.0.0.1:8080/x"),
                                        (b"set-cookie", b"sid=42; Path=/")))


class RoundTripTests(SynchronousTestCase):
    """What one end writes, the other reads back as it was."""

    def test_request(self):
        self.assertEqual(decode_request(encode_request(REQUEST)), REQUEST)

    def test_response(self):
        self.assertEqual(decode_response(encode_response(RESPONSE)), RESPONSE)

    def test_header_names_read_in_lower_case(self):
        head = decode_request(b"GET / HTTP/1.1\r\nHost: x\r\nX-Thing: 1\r\n\r\n")
        self.assertEqual(head.headers, ((b"host", b"x"), (b"x-thing", b"1")))


class StrictnessTests(SynchronousTestCase):
    """Writing refuses what h11 refuses; reading takes exactly one clean head."""

    def test_invalid_heads_are_not_written(self):
        for head in (RequestHead(b"GET", b"/", ((b"bad name", b"x"), (b"host", b"h"))),
                     RequestHead(b"GET", b"/", ((b"host", b"a\r\nx: y"),)),
                     RequestHead(b"GET", b"/", ())):  # HTTP/1.1 needs Host
            with self.assertRaises(BadHead):
                encode_request(head)
        with self.assertRaises(BadHead):
            encode_response(ResponseHead(200, b"OK", ((b"x", b"\x00"),)))

    def test_only_one_complete_http11_head_is_read(self):
        for data in (b"GET / HTTP/1.1\r\nHost: x\r\n",            # incomplete
                     b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",          # another version
                     b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                     b"Content-Length: 2\r\n\r\n",                  # smuggling smell
                     b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"y" * MAX_HEAD + b"\r\n\r\n"):
            with self.assertRaises(BadHead, msg=data[:40]):
                decode_request(data)
        for data in (b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\n",
                     b"HTTP/1.1 2000 OK\r\n\r\n", b"ICY 200 OK\r\n\r\n"):
            with self.assertRaises(BadHead, msg=data):
                decode_response(data)

    @settings(max_examples=300)
    @given(st.binary(max_size=512))
    def test_arbitrary_bytes_raise_nothing_but_bad_head(self, data):
        for decode in (decode_request, decode_response):
            try:
                decode(data)
            except BadHead:
                pass


class HopByHopTests(SynchronousTestCase):
    """One list of hop-by-hop headers, plus whatever Connection names."""

    def test_end_to_end(self):
        headers = [(b"connection", b"keep-alive, x-private"), (b"x-private", b"1"),
                   (b"transfer-encoding", b"chunked"), (b"upgrade", b"websocket"),
                   (b"accept", b"*/*")]
        self.assertEqual(end_to_end(headers), [(b"accept", b"*/*")])
        self.assertIn(b"transfer-encoding", HOP_BY_HOP)

"""Tests for remotecomm.relay.frames: envelope frames read and written without autobahn's
per-frame work, everything else left to autobahn (its own checks run in
tests/relay/test_conformance.py through the same reading)."""

import os
import struct

from autobahn.websocket.xormasker import create_xor_masker
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.frames import EnvelopeFrameReading, client_frame, server_frame, unmask

OPEN, CLOSING = 3, 2


class _AutobahnStandIn:
    """What the mixin reads of autobahn's protocol; records what it passes on."""

    STATE_OPEN = OPEN
    state = OPEN
    current_frame = None
    data = b""
    inside_message = False
    autoPingTimeoutCall = None
    autoPingRestartOnAnyTraffic = True
    maxFramePayloadSize = 100_000

    def _dataReceived(self, data):
        self.to_autobahn.append(data)


class _Reader(EnvelopeFrameReading, _AutobahnStandIn):
    def __init__(self, masked=True):
        self.masked_frames = masked
        self.messages = []
        self.to_autobahn = []
        self.close_after = None

    def onMessage(self, payload, isBinary):
        self.messages.append((payload, isBinary))
        if payload == self.close_after:
            self.state = CLOSING


def masked(payload: bytes) -> bytes:
    header, body = client_frame(payload)
    return header + body


def unmasked(payload: bytes) -> bytes:
    return b"".join(server_frame(payload))


def ping() -> bytes:
    return b"\x89\x80" + b"\x00" * 4


class UnmaskTests(SynchronousTestCase):
    def test_unmasking_matches_autobahn_at_every_size(self):
        mask = b"\x12\x34\xab\xcd"
        for length in (0, 1, 3, 4, 5, 125, 1023, 1024, 1025, 70_000):
            payload = os.urandom(length)
            self.assertEqual(unmask(payload, mask),
                             create_xor_masker(mask, length).process(payload), length)

    def test_client_frames_are_masked_with_a_fresh_mask(self):
        first, second = client_frame(b"hello"), client_frame(b"hello")
        self.assertEqual(first[0][:2], b"\x82\x85")
        self.assertEqual(unmask(first[1], first[0][2:6]), b"hello")
        self.assertNotEqual(first, second)  # 1 in 2**32 to fail

    def test_headers_by_payload_length(self):
        for length, header in ((0, b"\x82\x00"), (125, b"\x82\x7d"),
                               (126, b"\x82\x7e\x00\x7e"), (65535, b"\x82\x7e\xff\xff"),
                               (65536, b"\x82\x7f" + (65536).to_bytes(8, "big"))):
            self.assertEqual(server_frame(b"x" * length)[0], header, length)
            self.assertEqual(client_frame(b"x" * length)[0][:-4],
                             bytes((header[0], header[1] | 0x80)) + header[2:], length)


class ReadingTests(SynchronousTestCase):
    payloads = [b"a", b"b" * 125, b"c" * 126, b"d" * 65535, b"e" * 65536]

    def test_frames_in_one_read_are_delivered_in_order(self):
        reader = _Reader()
        reader.dataReceived(b"".join(masked(p) for p in self.payloads))
        self.assertEqual(reader.messages, [(p, True) for p in self.payloads])
        self.assertEqual(reader.to_autobahn, [])

    def test_frames_arriving_a_byte_at_a_time_are_delivered_once(self):
        reader = _Reader()
        wire = b"".join(masked(p) for p in self.payloads[:3])
        for i in range(len(wire)):
            reader.dataReceived(wire[i:i + 1])
        self.assertEqual([p for p, _ in reader.messages], self.payloads[:3])
        self.assertEqual(reader.to_autobahn, [])

    def test_a_client_reads_unmasked_frames(self):
        reader = _Reader(masked=False)
        reader.dataReceived(b"".join(unmasked(p) for p in self.payloads))
        self.assertEqual([p for p, _ in reader.messages], self.payloads)

    def test_a_control_frame_and_all_after_it_go_to_autobahn(self):
        reader = _Reader()
        after = masked(b"after")
        reader.dataReceived(masked(b"before") + ping() + after)
        self.assertEqual(reader.messages, [(b"before", True)])
        self.assertEqual(reader.to_autobahn, [ping() + after])

    def test_frames_autobahn_must_refuse_go_to_autobahn(self):
        text = b"\x81\x80\x00\x00\x00\x00"
        fragment = b"\x02\x80\x00\x00\x00\x00"
        reserved_bit = b"\xc2\x80\x00\x00\x00\x00"
        not_minimal = b"\x82\xfe\x00\x05" + b"\x00" * 4 + b"hello"
        for wire in (text, fragment, reserved_bit, not_minimal, unmasked(b"x")):
            reader = _Reader()
            reader.dataReceived(wire)
            self.assertEqual((reader.messages, reader.to_autobahn), ([], [wire]), wire)
        reader = _Reader(masked=False)
        reader.dataReceived(masked(b"x"))
        self.assertEqual(reader.messages, [])

    def test_a_frame_over_the_limit_goes_to_autobahn_from_its_header(self):
        reader = _Reader()
        reader.maxFramePayloadSize = 1000
        header = b"\x82\xfe" + struct.pack("!H", 1001) + b"\x00" * 4  # with its mask
        reader.dataReceived(header)  # no byte of its payload is read or held here
        self.assertEqual((reader.messages, reader.to_autobahn), ([], [header]))

    def test_while_autobahn_is_inside_a_frame_it_gets_everything(self):
        reader = _Reader()
        reader.current_frame = object()
        wire = masked(b"x")
        reader.dataReceived(wire)
        self.assertEqual((reader.messages, reader.to_autobahn), ([], [wire]))
        reader.current_frame = None
        reader.inside_message = True
        reader.dataReceived(b"more")
        self.assertEqual(reader.to_autobahn[-1], b"more")

    def test_a_held_frame_start_goes_to_autobahn_once_the_connection_closes(self):
        reader = _Reader()
        wire = masked(b"x" * 300)
        reader.dataReceived(wire[:3])  # not even the whole header
        reader.state = CLOSING
        reader.dataReceived(wire[3:])
        self.assertEqual((reader.messages, reader.to_autobahn), ([], [wire]))

    def test_a_frame_still_arriving_when_closing_begins_is_dropped(self):
        reader = _Reader()
        wire, close = masked(b"x" * 300), b"\x88\x80" + b"\x00" * 4
        reader.dataReceived(wire[:100])
        reader.state = CLOSING
        reader.dataReceived(wire[100:] + close)
        self.assertEqual((reader.messages, reader.to_autobahn), ([], [close]))

    def test_what_follows_a_close_during_delivery_goes_to_autobahn(self):
        reader = _Reader()
        reader.close_after = b"last"
        rest = masked(b"next") + masked(b"then")
        reader.dataReceived(masked(b"first") + masked(b"last") + rest)
        self.assertEqual([p for p, _ in reader.messages], [b"first", b"last"])
        self.assertEqual(reader.to_autobahn, [rest])

    def test_a_partial_frame_is_held_no_longer_than_needed(self):
        reader = _Reader()
        wire, following = masked(b"y" * 70_000), masked(b"z")
        reader.dataReceived(wire[:10])
        reader.dataReceived(wire[10:50_000])
        self.assertEqual(reader.messages, [])
        reader.dataReceived(wire[50_000:] + following[:3])
        self.assertEqual([p for p, _ in reader.messages], [b"y" * 70_000])
        self.assertEqual((reader._partial, reader._header_start), (None, following[:3]))
        reader.dataReceived(following[3:])
        self.assertEqual([p for p, _ in reader.messages], [b"y" * 70_000, b"z"])
        self.assertEqual((reader._partial, reader._header_start), (None, b""))

    def test_a_frame_in_pieces_is_held_in_one_buffer_of_its_size(self):
        reader = _Reader(masked=False)
        wire = unmasked(b"q" * 90_000)
        reader.dataReceived(wire[:30_000])
        self.assertEqual(len(reader._partial), 90_000)
        for piece in range(30_000, len(wire), 7_000):
            reader.dataReceived(wire[piece:piece + 7_000])
        self.assertEqual(reader.messages, [(b"q" * 90_000, True)])
        self.assertIs(type(reader.messages[0][0]), bytes)

"""Tests for remotecomm.logs: JSON log lines with structured fields."""

import io
import json

from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from remotecomm import logs


class JsonLogTests(SynchronousTestCase):
    """The JSON observer writes one object per line with the event's fields."""

    def emit(self, emit):
        out = io.StringIO()
        emit(Logger(namespace="remotecomm.test", observer=logs.JsonLineObserver(out)))
        [line] = out.getvalue().splitlines()
        return json.loads(line)

    def test_fields_are_keys_beside_the_message(self):
        """Structured fields such as request_id are keys; the message is formatted."""
        event = self.emit(lambda log: log.info("session {request_id} approved by {operator}",
                                               request_id="r-1", operator="op"))
        self.assertEqual((event["request_id"], event["operator"]), ("r-1", "op"))
        self.assertEqual(event["message"], "session r-1 approved by op")
        self.assertEqual((event["level"], event["namespace"]), ("info", "remotecomm.test"))
        self.assertRegex(event["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

    def test_unserialisable_values_become_text(self):
        """Bytes and objects never break a log line."""
        event = self.emit(lambda log: log.warn("odd {thing}", thing=object(), raw=b"\xffab"))
        self.assertIn("object", event["thing"])
        self.assertEqual(event["raw"], "\ufffdab")

    def test_failures_carry_their_traceback(self):
        """log.failure keeps the traceback in a field of the same line."""
        def emit(log):
            try:
                raise ZeroDivisionError("division by zero")
            except ZeroDivisionError:
                log.failure("it broke")

        event = self.emit(emit)
        self.assertEqual(event["level"], "critical")
        self.assertIn("ZeroDivisionError", event["failure"])

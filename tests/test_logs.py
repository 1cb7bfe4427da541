"""Tests for remotecomm.logs: JSON log lines with structured fields."""

import io
import json

from twisted.logger import Logger, jsonFileLogObserver
from twisted.trial.unittest import SynchronousTestCase

from remotecomm import logs


class JsonLogTests(SynchronousTestCase):
    """The JSON observer writes one object per line with the event's fields."""

    def test_fields_are_keys(self):
        """Structured fields such as request_id appear as their own keys."""
        out = io.StringIO()
        self.patch(logs.sys, "stdout", out)
        observer = logs.json_observer()
        Logger(namespace="remotecomm.test", observer=observer).info(
            "session {request_id} approved by {operator}", request_id="r-1", operator="op")
        [line] = out.getvalue().splitlines()
        event = json.loads(line)
        self.assertEqual((event["request_id"], event["operator"]), ("r-1", "op"))
        self.assertEqual(event["log_namespace"], "remotecomm.test")

    def test_observer_matches_twisted_json_format(self):
        """The output is twisted.logger's JSON format, so its tools read it back."""
        self.assertEqual(type(logs.json_observer()),
                         type(jsonFileLogObserver(io.StringIO(), recordSeparator="")))

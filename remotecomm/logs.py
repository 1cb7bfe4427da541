"""Log output: structured events through ``twisted.logger``, optionally as JSON lines.

``twistd --logger remotecomm.logs.json_observer remotecomm …`` writes one JSON
object per line to standard output, with every structured field of the
event (``request_id``, ``session_id``, ``user_id`` …) as its own key.
"""

import sys

from twisted.logger import ILogObserver, jsonFileLogObserver


def json_observer() -> ILogObserver:
    """A log observer factory for twistd's ``--logger`` option: JSON lines on stdout."""
    return jsonFileLogObserver(sys.stdout, recordSeparator="")

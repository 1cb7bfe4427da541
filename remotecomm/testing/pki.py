"""Certificates for tests that need a CA other than the server's."""

import datetime
from pathlib import Path

from remotecomm.tls import create_ca


def write_other_ca(cert_path: Path) -> None:
    """Write a CA certificate that has signed nothing of ours (its key beside it)."""
    create_ca(cert_path, cert_path.with_suffix(".key"), "some other CA",
              datetime.datetime.now(datetime.timezone.utc))

"""HTTP clients for tests: no persistent connections left behind in the reactor."""

from __future__ import annotations

from pathlib import Path

import treq
from twisted.internet import ssl
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool


def http_client(reactor, ca_certificate: Path | None = None) -> treq.client.HTTPClient:
    """A treq client that trusts ``ca_certificate`` and closes every connection after use."""
    policy = (BrowserLikePolicyForHTTPS(trustRoot=ssl.Certificate.loadPEM(
        ca_certificate.read_bytes())) if ca_certificate else BrowserLikePolicyForHTTPS())
    pool = HTTPConnectionPool(reactor, persistent=False)
    return treq.client.HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))

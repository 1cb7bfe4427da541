"""HTTP clients for tests: no persistent connections left behind in the reactor."""

from __future__ import annotations

from pathlib import Path

import treq
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

from remotecomm.tls import load_ca


def http_client(reactor, ca_certificate: Path | None = None) -> treq.client.HTTPClient:
    """A treq client that trusts ``ca_certificate`` and closes every connection after use."""
    policy = (BrowserLikePolicyForHTTPS(trustRoot=load_ca(ca_certificate))
              if ca_certificate else BrowserLikePolicyForHTTPS())
    pool = HTTPConnectionPool(reactor, persistent=False)
    return treq.client.HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))

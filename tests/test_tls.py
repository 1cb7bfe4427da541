"""Tests for remotecomm.tls: certificates and the listener's TLS profiles."""

import datetime
import json
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase

from remotecomm.testing.processes import run_command
from remotecomm.tls import (INTERMEDIATE_CIPHERS, TLSSetupError, create_ca, issue_certificate,
                            server_tls_options)

def make_pki(folder: Path) -> dict[str, Path]:
    paths = {name: folder / name for name in ("ca.pem", "ca.key", "server.pem", "server.key")}
    create_ca(paths["ca.pem"], paths["ca.key"], "test CA", datetime.datetime.now(
        datetime.timezone.utc))
    issue_certificate(paths["ca.pem"], paths["ca.key"], paths["server.pem"], paths["server.key"],
                      ["localhost", "127.0.0.1"], datetime.datetime.now(datetime.timezone.utc))
    return paths


class CertificateTests(SynchronousTestCase):
    """The dev CA issues certificates that clients can verify."""

    def setUp(self):
        self.folder = Path(self.mktemp())
        self.paths = make_pki(self.folder)

    def test_private_keys_are_owner_only(self):
        """Key files are written with mode 0600."""
        for name in ("ca.key", "server.key"):
            self.assertEqual(self.paths[name].stat().st_mode & 0o777, 0o600)

    def test_server_certificate_names_and_issuer(self):
        """The certificate carries the configured names and is signed by the CA."""
        cert = x509.load_pem_x509_certificate(self.paths["server.pem"].read_bytes())
        ca = x509.load_pem_x509_certificate(self.paths["ca.pem"].read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(names.get_values_for_type(x509.DNSName), ["localhost"])
        self.assertEqual([str(a) for a in names.get_values_for_type(x509.IPAddress)],
                         ["127.0.0.1"])
        self.assertEqual(cert.issuer, ca.subject)
        cert.verify_directly_issued_by(ca)

    def test_missing_certificate_is_a_clear_error(self):
        """Starting without certificates says to run init."""
        with self.assertRaises(TLSSetupError) as e:
            server_tls_options(self.folder / "nope.pem", self.folder / "nope.key", "modern")
        self.assertIn("remotecomm admin init", str(e.exception))


class _Hello(Protocol):
    def connectionMade(self):
        self.transport.write(b"hello")


class ProfileTests(TestCase):
    """The listener speaks exactly the configured profile."""

    def setUp(self):
        self.paths = make_pki(Path(self.mktemp()))

    async def listen(self, profile: str) -> int:
        options = server_tls_options(self.paths["server.pem"], self.paths["server.key"], profile)
        factory = TLSMemoryBIOFactory(options, False, Factory.forProtocol(_Hello))
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def handshake(self, port: int, *, maximum=None, ciphers=None):
        """Connect with Python's ssl; the negotiated (version, cipher) or the SSL error."""
        context = ssl.create_default_context(cafile=str(self.paths["ca.pem"]))
        if maximum is not None:
            context.maximum_version = maximum
        if ciphers is not None:
            context.set_ciphers(ciphers)

        def connect():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                try:
                    with context.wrap_socket(raw, server_hostname="localhost") as tls:
                        tls.recv(5)
                        return tls.version(), tls.cipher()[0]
                except (ssl.SSLError, ConnectionError) as e:
                    return e

        return deferToThread(connect)

    async def test_modern_speaks_tls13(self):
        """A current client gets TLS 1.3."""
        port = await self.listen("modern")
        version, _ = await self.handshake(port)
        self.assertEqual(version, "TLSv1.3")

    async def test_modern_refuses_tls12(self):
        """The modern profile refuses TLS 1.2 clients."""
        port = await self.listen("modern")
        result = await self.handshake(port, maximum=ssl.TLSVersion.TLSv1_2)
        self.assertIsInstance(result, (ssl.SSLError, ConnectionError))

    async def test_intermediate_allows_tls12_with_aead(self):
        """The intermediate profile takes TLS 1.2 with an ECDHE AEAD cipher."""
        port = await self.listen("intermediate")
        version, cipher = await self.handshake(port, maximum=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(version, "TLSv1.2")
        self.assertTrue("GCM" in cipher or "CHACHA20" in cipher, cipher)

    async def test_intermediate_refuses_cbc_ciphers(self):
        """CBC-mode suites are not offered even on TLS 1.2."""
        port = await self.listen("intermediate")
        result = await self.handshake(port, maximum=ssl.TLSVersion.TLSv1_2,
                                      ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
        self.assertIsInstance(result, (ssl.SSLError, ConnectionError))


SSLYZE = Path(__file__).resolve().parents[1] / ".venv-sslyze" / "bin" / "python"


class ScanTests(TestCase):
    """sslyze (in its own virtualenv: its pins clash with ours; scripts/test makes it) scans
    the listener: only the profile's protocol versions, ciphers and groups are accepted."""

    timeout = 60
    listen = ProfileTests.listen

    def setUp(self):
        self.paths = make_pki(Path(self.mktemp()))

    async def scan(self, port: int) -> dict:
        if not SSLYZE.exists():
            self.fail(f"{SSLYZE} is missing: scripts/test sets it up")
        code, output = await run_command(reactor, [
            str(SSLYZE), "-m", "sslyze", "--json_out=-", "--sslv2", "--sslv3",
            "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", "--elliptic_curves",
            f"127.0.0.1:{port}"], timeout=50)
        self.assertEqual(code, 0, output[-2000:])
        (server,) = json.loads(output[output.index("{"):])["server_scan_results"]
        return server["scan_result"]

    @staticmethod
    def accepted(result: dict, name: str) -> list[str]:
        return sorted(suite["cipher_suite"]["openssl_name"]
                      for suite in result[name]["result"]["accepted_cipher_suites"])

    async def test_modern_and_intermediate_as_sslyze_sees_them(self):
        for profile, versions in (("modern", {"tls_1_3_cipher_suites"}),
                                  ("intermediate", {"tls_1_2_cipher_suites",
                                                    "tls_1_3_cipher_suites"})):
            result = await self.scan(await self.listen(profile))
            offered = {name for name in ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites",
                                         "tls_1_0_cipher_suites", "tls_1_1_cipher_suites",
                                         "tls_1_2_cipher_suites", "tls_1_3_cipher_suites")
                       if self.accepted(result, name)}
            self.assertEqual(offered, versions, profile)
            if "tls_1_2_cipher_suites" in versions:
                # Of the profile's suites, those that fit our certificate's key.
                key = x509.load_pem_x509_certificate(
                    self.paths["server.pem"].read_bytes()).public_key()
                kind = "ECDSA" if isinstance(key, ec.EllipticCurvePublicKey) else "RSA"
                fitting = sorted(s for s in INTERMEDIATE_CIPHERS.split(":") if f"-{kind}-" in s)
                self.assertEqual(self.accepted(result, "tls_1_2_cipher_suites"), fitting)
            groups = result["elliptic_curves"]["result"]["supported_curves"]
            self.assertEqual(sorted(g["name"] for g in groups),
                             sorted(["X25519", "secp256r1", "secp384r1"]), profile)

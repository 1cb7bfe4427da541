"""TLS for every listener and client: a development CA, certificates, profiles.

``remotecomm admin init`` creates a small CA of the deployment and a server
certificate signed by it; clients (CLI, device agent, tests) trust that CA.
Server contexts are built with ciphers, protocol versions and key-exchange
groups set explicitly, because Twisted's defaults fail Mozilla's profiles.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from OpenSSL._util import lib as _openssl_lib
from twisted.internet import ssl
from twisted.web.client import BrowserLikePolicyForHTTPS

# Mozilla "intermediate" (TLS 1.2 part): ECDHE key exchange with AEAD ciphers only.
INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
# Key-exchange groups of both Mozilla profiles.
KEY_EXCHANGE_GROUPS = b"X25519:P-256:P-384"
_MINIMUM_VERSION = {"modern": ssl.TLSVersion.TLSv1_3, "intermediate": ssl.TLSVersion.TLSv1_2}

CA_LIFETIME = datetime.timedelta(days=3650)
LEAF_LIFETIME = datetime.timedelta(days=397)


class TLSSetupError(Exception):
    """Certificates are missing or unusable; the message says which and why."""


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def create_ca(cert_path: Path, key_path: Path, common_name: str, now: datetime.datetime) -> None:
    """Create a self-signed CA certificate and its private key (mode 0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def issue_certificate(ca_cert_path: Path, ca_key_path: Path, cert_path: Path, key_path: Path,
                      names: list[str] | tuple[str, ...], now: datetime.datetime) -> None:
    """Issue a leaf certificate for ``names`` (host names or IP addresses), signed by the CA.

    It is good for TLS servers and clients alike (mutual TLS between our
    processes comes later).
    """
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise TLSSetupError(f"cannot read the CA ({ca_cert_path}, {ca_key_path}): {e}") from None
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + LEAF_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class _ProfileCertificateOptions(ssl.CertificateOptions):
    """``CertificateOptions`` that also pins the key-exchange groups."""

    def getContext(self) -> SSL.Context:
        context = super().getContext()
        if not getattr(self, "_groups_set", False):
            # pyOpenSSL has no public call for the groups list yet.
            if _openssl_lib.SSL_CTX_set1_curves_list(context._context, KEY_EXCHANGE_GROUPS) != 1:
                raise TLSSetupError("OpenSSL refused the key-exchange groups "
                                    + KEY_EXCHANGE_GROUPS.decode())
            self._groups_set = True
        return context


def server_tls_options(cert_path: Path, key_path: Path, profile: str) -> ssl.CertificateOptions:
    """TLS options for a listener: our certificate, the named profile (modern or intermediate)."""
    try:
        certificate = ssl.PrivateCertificate.loadPEM(cert_path.read_bytes() + key_path.read_bytes())
    except FileNotFoundError as e:
        raise TLSSetupError(f"missing {e.filename}: run `remotecomm admin init` first") from None
    except Exception as e:
        raise TLSSetupError(f"cannot load {cert_path} / {key_path}: {e}") from None
    options = _ProfileCertificateOptions(
        privateKey=certificate.privateKey.original,
        certificate=certificate.original,
        raiseMinimumTo=_MINIMUM_VERSION[profile],
        acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(INTERMEDIATE_CIPHERS),
    )
    options.getContext()  # fail now, not at the first connection
    return options


def load_ca(ca_path: Path) -> ssl.Certificate:
    """The CA certificate a client trusts (alone); a clear :class:`TLSSetupError` if unusable."""
    try:
        return ssl.Certificate.loadPEM(ca_path.read_bytes())
    except FileNotFoundError:
        raise TLSSetupError(f"missing CA certificate {ca_path}") from None
    except Exception as e:
        raise TLSSetupError(f"cannot load CA certificate {ca_path}: {e}") from None


def https_policy(ca_path: Path | None) -> BrowserLikePolicyForHTTPS:
    """What an HTTPS client of ours trusts: only the deployment's CA when one is given
    (the relay ↔ manager API, the terminal with ``--ca``), else the system's roots."""
    if ca_path is None:
        return BrowserLikePolicyForHTTPS()
    return BrowserLikePolicyForHTTPS(trustRoot=load_ca(ca_path))

"""Certificates of a test's own for mutual TLS on 127.0.0.1: a CA, a server pair and a
client pair, laid out as Docker's ``DOCKER_CERT_PATH`` wants them."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _issue(
    directory: Path,
    stem: str,
    subject: str,
    usage: x509.ObjectIdentifier,
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Name] | None,
) -> ec.EllipticCurvePrivateKey:
    """A key and a certificate (``<stem>-key.pem``, ``<stem>.pem``), self-signed as a CA
    when ``ca`` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    signer, issuer = ca or (key, _name(subject))
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )  # fmt: skip
    if ca is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(signer, hashes.SHA256())
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{stem}-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


def certificates(directory: Path) -> None:
    """``ca.pem``; ``server.pem``/``server-key.pem`` for 127.0.0.1; and the client's pair
    under the names DOCKER_CERT_PATH wants (``cert.pem``, ``key.pem``)."""
    directory.mkdir()
    ca = (_issue(directory, "ca", "secretd test CA", ExtendedKeyUsageOID.SERVER_AUTH, None),
          _name("secretd test CA"))  # fmt: skip
    _issue(directory, "server", "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, ca)
    _issue(directory, "cert", "client", ExtendedKeyUsageOID.CLIENT_AUTH, ca)
    (directory / "cert-key.pem").rename(directory / "key.pem")

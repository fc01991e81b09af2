"""A manager on another machine, as Docker documents one: ``tcp://`` with mutual TLS
(``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``). Here a second dockerd on loopback, its
certificates signed by a CA of the test's own."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import Runner
from tests.support.daemons import start_dockerd, stop
from tests.support.dockerd import Dockerd
from tests.support.engines import Bind
from tests.support.waiting import free_port

pytestmark = [pytest.mark.docker, pytest.mark.root]


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


def test_push_to_a_manager_over_tls(
    secretd: Runner, bound: Bind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values reach it over mutual TLS, checked against the swarm's own CA even where
    REQUESTS_CA_BUNDLE names another (requests would let that one win)."""
    tls = tmp_path / "tls"
    certificates(tls)
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="secretd-tls-dockerd-"))
    flags = [
        f"--host=tcp://127.0.0.1:{port}", "--tlsverify", f"--tlscacert={tls / 'ca.pem'}",
        f"--tlscert={tls / 'server.pem'}", f"--tlskey={tls / 'server-key.pem'}",
    ]  # fmt: skip
    try:
        proc, host = start_dockerd(root, extra=flags)
        try:
            local = Dockerd(host)
            listen = f"127.0.0.1:{free_port()}"
            local(
                "swarm", "init", "--advertise-addr", listen, "--listen-addr", listen,
                "--data-path-port", str(free_port(socket.SOCK_DGRAM, below=49152)),
            )  # fmt: skip
            values = bound("tok")
            monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
            monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
            monkeypatch.setenv("DOCKER_CERT_PATH", str(tls))
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
            done = secretd("swarm", "push", "tok")
            assert done.returncode == 0, done.stderr
            assert values["tok"] not in done.stdout + done.stderr
            listed = local("secret", "ls", "--filter", "label=io.secretd.source=tok",
                           "--format", "{{.Name}}")  # fmt: skip
            assert listed.split() == [done.stdout.split()[2]]

            monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path / "elsewhere"))
            shutil.copytree(tls, tmp_path / "elsewhere")
            (tmp_path / "elsewhere" / "ca.pem").write_bytes((tls / "cert.pem").read_bytes())
            refused = secretd("swarm", "push", "tok")
            assert refused.returncode == 125 and refused.stderr.count("\n") == 1, refused.stderr
            assert "did not pass the TLS check" in refused.stderr
        finally:
            stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)

"""Real servers and set-up helpers for the Vault provider's tests: OpenBao (Vault's HTTP
API, the ``bao`` binary next to this Python), PostgreSQL for the database engine's
renewable leases, and a stand-in for the Kubernetes TokenReview API. Fixtures that use
them live in conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
from cryptography import x509

from secretd.backends.vault import VaultProvider
from secretd.broker import Broker
from secretd.config import Config
from tests.support.waiting import free_port

ROOT_TOKEN = "root"
BAO = Path(sys.executable).parent / "bao"

ProviderFactory = Callable[..., VaultProvider]


@dataclass
class BaoServer:
    """A running ``bao server -dev``; ``client()`` is a root hvac client for set-up."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    audit: Path
    ca: Path | None = None  # the generated CA of a -dev-tls server

    def requests(self) -> list[tuple[str, str]]:
        """``(operation, path)`` of every request the server has seen (its audit log)."""
        entries = [json.loads(line) for line in self.audit.read_text().splitlines()]
        return [
            (entry["request"]["operation"], entry["request"]["path"])
            for entry in entries
            if entry["type"] == "request"
        ]

    @property
    def address(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"

    def client(self, token: str = ROOT_TOKEN) -> hvac.Client:
        return hvac.Client(url=self.address, token=token, verify=str(self.ca or True))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_bao(workdir: Path, tls: bool = False) -> BaoServer:
    """Start a dev server on a free port and wait until /v1/sys/health answers 200."""
    port = free_port()
    log = workdir / f"bao-{port}.log"
    audit = workdir / f"audit-{port}.log"
    config = workdir / f"bao-{port}.hcl"
    # The API cannot enable audit devices in OpenBao; a config file can.
    config.write_text(f'audit "file" "file" {{ options {{ file_path = "{audit}" }} }}\n')
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BAO), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
                f"-dev-listen-address=127.0.0.1:{port}", f"-config={config}",
                *(["-dev-tls", f"-dev-tls-cert-dir={workdir}"] if tls else []),
            ],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(workdir)},
        )  # fmt: skip
    server = BaoServer(port, process, log, audit, workdir / "vault-ca.pem" if tls else None)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bao exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            health = f"{server.address}/v1/sys/health"
            context = ssl.create_default_context(cafile=str(server.ca)) if tls else None
            with urllib.request.urlopen(health, timeout=1, context=context) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"bao did not become healthy in 30s: {log.read_text()[-2000:]}")


def prepare(server: BaoServer) -> None:
    """Mounts the tests share: KV v1 at kv1/, PKI with a leasing role, AppRole."""
    root = server.client()
    root.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    root.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
    root.write_data(
        "pki/root/generate/internal", data={"common_name": "example.com", "ttl": "87600h"}
    )
    root.write_data(
        "pki/roles/web",
        data={
            "allowed_domains": "example.com", "allow_subdomains": True, "max_ttl": "72h",
            "generate_lease": True, "key_type": "ec", "key_bits": 256,
        },
    )  # fmt: skip
    root.sys.enable_auth_method("approle")


def broker_for(settings: dict[str, Any], tmp_path: Path) -> Broker:
    config = Config(
        state_dir=tmp_path / "state", runtime_dir=tmp_path / "rt", providers={"vault": settings}
    )
    return Broker(config)


def policy_token(server: BaoServer, name: str, hcl: str, **options: Any) -> dict[str, Any]:
    """A token limited to one policy: ``{"token", "accessor"}``."""
    root = server.client()
    root.sys.create_or_update_policy(name=name, policy=hcl)
    auth = root.auth.token.create(policies=[name], **options)["auth"]
    return {"token": auth["client_token"], "accessor": auth["accessor"]}


def approle(server: BaoServer, name: str, hcl: str, **options: Any) -> str:
    """An AppRole role ``name`` with a policy of its own; returns its role_id."""
    root = server.client()
    root.sys.create_or_update_policy(name=name, policy=hcl)
    root.write_data(f"auth/approle/role/{name}", data={"token_policies": name, **options})
    return str(root.read(f"auth/approle/role/{name}/role-id")["data"]["role_id"])


def read_policy(path: str) -> str:
    return f'path "{path}" {{ capabilities = ["read"] }}'


def lease_exists(server: BaoServer, lease_id: str) -> bool:
    try:
        server.client().sys.read_lease(lease_id)
    except hvac.exceptions.InvalidRequest:  # "invalid lease"
        return False
    return True


def leases(server: BaoServer, prefix: str) -> set[str]:
    """The leases Vault holds under ``prefix`` (e.g. ``pki/issue/web/``)."""
    try:
        return set(server.client().sys.list_leases(prefix)["data"]["keys"])
    except hvac.exceptions.InvalidPath:
        return set()


def is_revoked(server: BaoServer, cert: x509.Certificate) -> bool:
    """Whether the PKI engine lists ``cert`` as revoked."""
    number = cert.serial_number
    serial = "-".join(f"{b:02x}" for b in number.to_bytes((number.bit_length() + 7) // 8, "big"))
    return bool(server.client().read(f"pki/cert/{serial}")["data"]["revocation_time"])


@dataclass
class Postgres:
    port: int
    password: str

    def can_login(self, username: str, password: str) -> bool:
        result = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", username, "-d", "postgres",
             "-tAc", "select current_user"],
            env={**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return result.returncode == 0 and result.stdout.strip() == username


def pg_bin(name: str) -> str | None:
    """Debian keeps PostgreSQL's server programs out of PATH, under its version."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return shutil.which(name)


@contextmanager
def running_postgres(initdb: str, pg_ctl: str) -> Iterator[Postgres]:
    """A throwaway PostgreSQL on a free port, run as the ``postgres`` user when root
    (PostgreSQL refuses to run as root)."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    workdir = Path(tempfile.mkdtemp(prefix="secretd-pg-"))
    password = uuid.uuid4().hex
    (workdir / "pw").write_text(password)
    if as_user:
        shutil.chown(workdir, "postgres")
        shutil.chown(workdir / "pw", "postgres")
    port = free_port()
    data = workdir / "data"
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "postgres", "-N",
         f"--pwfile={workdir / 'pw'}", "--auth=scram-sha-256"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={workdir}"
    control = [*as_user, pg_ctl, "-D", str(data)]
    subprocess.run(
        [*control, "-o", f"{options} -c fsync=off", "-w", "-l", str(workdir / "log"), "start"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    try:
        yield Postgres(port=port, password=password)
    finally:
        subprocess.run([*control, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def configure_database(server: BaoServer, postgres: Postgres) -> str:
    """The database engine at database/, role ``app``: 4 s credentials, 5 s at most."""
    root = server.client()
    root.sys.enable_secrets_engine("database", path="database")
    url = f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{postgres.port}/postgres"
    root.write_data(
        "database/config/pg",
        data={
            "plugin_name": "postgresql-database-plugin", "allowed_roles": "app",
            "connection_url": url, "username": "postgres", "password": postgres.password,
            "password_authentication": "scram-sha-256",
        },
    )  # fmt: skip
    root.write_data(
        "database/roles/app",
        data={
            "db_name": "pg",
            "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
            "VALID UNTIL '{{expiration}}';",
            "default_ttl": "4s", "max_ttl": "5s",
        },
    )  # fmt: skip
    return "database/creds/app"


@contextmanager
def token_review_api() -> Iterator[tuple[str, set[str]]]:
    """An HTTP server answering Kubernetes TokenReviews: tokens put in the yielded set are
    valid (service account ``default/app``), others are not. Yields its URL and the set."""
    valid: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            ok = review["spec"]["token"] in valid
            status: dict[str, Any] = {"authenticated": ok}
            if ok:
                status["user"] = {"username": "system:serviceaccount:default:app", "uid": "u-1"}
            kind = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1"}
            body = json.dumps({**kind, "status": status}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", valid
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""Servers the AWS tests talk to, and the constants they share with the fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.support.waiting import free_port

REGION = "us-east-1"
ACCESS_KEY = "AKIAMOTOTESTKEY00001"
SECRET_KEY = "moto-test-secret-access-key-do-not-print"


@dataclass
class Moto:
    url: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


@contextmanager
def running_moto(workdir: Path) -> Iterator[Moto]:
    """``moto_server`` from this interpreter's bin directory on a free port, until exit."""
    binary = Path(sys.executable).parent / "moto_server"
    port = free_port()
    log = workdir / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Moto(url=f"http://127.0.0.1:{port}", log=log, process=proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode}: {log.read_text()}")
            try:
                with urllib.request.urlopen(f"{server.url}/moto-api/data.json", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not answer in 30s: {log.read_text()}")
                time.sleep(0.1)
        yield server
    finally:
        server.stop()


Route = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]
STS_ERROR = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender'
    "</Type><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"
)


@dataclass
class FakeAws:
    """Canned answers to AWS calls: JSON protocol (``X-Amz-Target: Service.Operation``)
    and, for STS, query protocol errors (target ``sts.Action``).

    ``routes[target](request)`` gives ``(status, body)``; ``delay`` holds each answer back.
    """

    url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    delay: float = 0.0

    def answer(self, target: str, status: int, code: str, message: str = "canned") -> None:
        self.routes[target] = lambda _body: (status, {"__type": code, "message": message})

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                query = "x-amz-json" not in self.headers.get("Content-Type", "")
                if query:
                    request: dict[str, Any] = dict(parse_qsl(raw.decode()))
                    target = f"sts.{request.get('Action', '')}"
                else:
                    request, target = json.loads(raw or b"{}"), self.headers["X-Amz-Target"]
                fake.hits.append(target)
                time.sleep(fake.delay)
                route = fake.routes.get(target)
                status, body = route(request) if route else (400, {"__type": "UnknownOperation"})
                if query:
                    payload = STS_ERROR.format(code=body["__type"], message=body["message"])
                    self.reply(status, "text/xml", payload.encode())
                else:
                    self.reply(status, "application/x-amz-json-1.1", json.dumps(body).encode())

            def reply(self, status: int, content_type: str, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except ConnectionError:
                    pass  # the client gave up waiting (read timeout tests)

            def log_message(self, *args: Any) -> None:
                return None

        return Handler

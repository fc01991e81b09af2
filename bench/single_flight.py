"""Upstream reads for 200 concurrent `secretd run` of one OpenBao KV secret through one
daemon, counted in OpenBao's audit log (a file audit device in the server's config file:
the API refuses `audit enable` in dev mode). Twice: with a relay that holds each answer
``DELAY`` s, as a distant server would, so that the runs are all in flight during the
first read; against OpenBao on loopback, where a read is over before most runs have
started; and on loopback with ``cache_ttl`` set, where later runs take the cached value.
Then a leased secret (a PKI certificate): one lease, and one revocation, a run.

Usage (as root): python bench/single_flight.py      (~30 s; prints a Markdown table)
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]
from _timing import SECRETD, environment, secretd_daemon  # noqa: E402

from tests.support.relay import relay  # noqa: E402
from tests.vault.servers import ROOT_TOKEN, BaoServer, prepare, start_bao  # noqa: E402

RUNS = 200
LEASED_RUNS = 20
DELAY = 1.0
KV = "kv1/bench-flight"
CERT = "vault:pki/issue/web?common_name=bench.example.com&ttl=60s#certificate"


@contextmanager
def daemon(tmp: Path, address: str, cache_ttl: int = 0) -> Iterator[dict[str, str]]:
    """A ``secretd daemon`` whose ``kv`` and ``tls`` come from OpenBao at ``address``;
    yields the environment a client finds it with."""
    (tmp / "secretd.toml").write_text(
        f"cache_ttl = {cache_ttl}\n\n"
        f'[providers.vault]\naddress = "{address}"\ntoken = "{ROOT_TOKEN}"\n\n'
        f'[secrets.kv]\nsource = "vault:{KV}#password"\n\n[secrets.tls]\nsource = "{CERT}"\n'
    )
    env = environment(SECRETD_STATE_DIR=f"{tmp}/state", SECRETD_RUNTIME_DIR=f"{tmp}/run")
    with secretd_daemon(env, tmp / "run", tmp) as pid:
        if pid is None:
            raise SystemExit("secretd daemon did not start")
        yield env


def together(env: dict[str, str], cwd: Path, name: str, runs: int) -> tuple[set[bytes], float]:
    """Start ``runs`` `secretd run` reading ``name`` at once; their outputs, the seconds
    until the last ended. Every run must succeed."""
    argv = [*SECRETD, "run", "--no-redact", "--secret", name, "--", "cat", f"/run/secrets/{name}"]
    started = time.monotonic()
    procs = [
        subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(runs)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    took = time.monotonic() - started
    failed = [err for proc, (_, err) in zip(procs, outputs, strict=True) if proc.returncode]
    if failed:
        raise SystemExit(f"{len(failed)} of {runs} runs failed: {failed[0].decode()[-300:]}")
    return {out for out, _ in outputs}, took


def kv_row(tmp: Path, bao: BaoServer, upstream: str, address: str, cache_ttl: int = 0) -> str:
    seen = len(bao.requests())
    with daemon(tmp, address, cache_ttl) as env:
        values, took = together(env, tmp, "kv", RUNS)
    if values != {b"bench-flight-value"}:
        raise SystemExit(f"the runs read {len(values)} different values")
    reads = bao.requests()[seen:].count(("read", KV))
    return f"| {upstream} | {RUNS} | {reads} | {took:.1f} s |"


def leases(tmp: Path, bao: BaoServer) -> str:
    seen = len(bao.requests())
    with daemon(tmp, bao.address) as env:
        certificates, _ = together(env, tmp, "tls", LEASED_RUNS)
    during = bao.requests()[seen:]
    issued = during.count(("update", "pki/issue/web"))
    revoked = during.count(("update", "sys/leases/revoke"))
    return (
        f"A leased secret (a PKI certificate), {LEASED_RUNS} concurrent runs on loopback: "
        f"{issued} leases issued, {revoked} revoked, {len(certificates)} different "
        f"certificates ({issued / LEASED_RUNS:.0f} lease a run)."
    )


def main() -> None:
    with TemporaryDirectory(prefix="secretd-bench-") as name:
        tmp = Path(name)
        bao = start_bao(tmp)
        try:
            prepare(bao)
            bao.client().write_data(KV, data={"password": "bench-flight-value"})
            with relay(("127.0.0.1", bao.port), DELAY) as held:
                upstream = f"OpenBao behind a relay holding each answer {DELAY:.0f} s"
                rows = [kv_row(tmp, bao, upstream, f"http://127.0.0.1:{held.port}")]
            rows.append(kv_row(tmp, bao, "OpenBao on loopback, no delay", bao.address))
            cached = "OpenBao on loopback, `cache_ttl = 10`"
            rows.append(kv_row(tmp, bao, cached, bao.address, cache_ttl=10))
            leased = leases(tmp, bao)
        finally:
            bao.stop()
    print("| upstream | concurrent runs | upstream reads (audit log) | all runs done in |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\n{leased}")


if __name__ == "__main__":
    main()

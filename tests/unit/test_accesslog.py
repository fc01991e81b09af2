"""The access log file: 0600, no link followed, rotated by size keeping N, readable by
``secretd audit log``, never a value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretd import accesslog
from tests.conftest import Runner


@pytest.fixture(autouse=True)
def _off_afterwards() -> Iterator[None]:
    yield
    accesslog.configure(None)


def test_created_0600_one_json_line_per_event(tmp_path: Path) -> None:
    os.umask(0o022)
    accesslog.configure(tmp_path / "state")
    accesslog.record("run", run="sandbox-1", uid=1000, secrets=[{"name": "k", "version": "3"}])
    path = tmp_path / "state" / "access.log"
    assert path.stat().st_mode & 0o777 == 0o600
    (line,) = path.read_text().splitlines()
    event = json.loads(line)
    assert event["event"] == "run" and event["uid"] == 1000 and event["time"].endswith("Z")


def test_a_value_given_by_mistake_raises_instead_of_being_written(tmp_path: Path) -> None:
    accesslog.configure(tmp_path)
    accesslog.record("run", run="x")
    with pytest.raises(TypeError):
        accesslog.record("run", value=b"hunter2")
    assert b"hunter2" not in (tmp_path / "access.log").read_bytes()


def test_a_link_planted_at_the_log_is_refused_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (tmp_path / "access.log").symlink_to(victim)
    accesslog.configure(tmp_path)
    accesslog.record("run", run="x")
    assert victim.read_text() == "untouched\n"
    assert "symbolic link" in caplog.text


def test_another_users_file_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "access.log"
    path.write_text("")
    os.chown(path, 65534, 65534)
    accesslog.configure(tmp_path)
    accesslog.record("run", run="x")
    assert path.read_text() == "" and "not a regular file of yours" in caplog.text


def test_nothing_is_created_before_the_first_event(tmp_path: Path) -> None:
    accesslog.configure(tmp_path / "state")
    assert not (tmp_path / "state").exists()
    accesslog.record("run", run="x")
    assert (tmp_path / "state" / "access.log").exists()


def test_rotated_by_size_keeping_n_files(tmp_path: Path) -> None:
    state = tmp_path / "state"
    accesslog.configure(state, max_bytes=1000, keep=2)
    for index in range(200):
        accesslog.record("fuse-open", file="api_key", pid=index, comm="cat", uid=0)
    names = sorted(p.name for p in state.iterdir())
    assert names == ["access.log", "access.log.1", "access.log.2"]
    for path in state.iterdir():
        assert path.stat().st_size < 1100 and path.stat().st_mode & 0o777 == 0o600
    pids = [e["pid"] for e in accesslog.read(state)]
    assert pids == sorted(pids) and pids[-1] == 199  # oldest first, the newest kept


def test_a_writer_in_another_process_follows_a_rotation(tmp_path: Path) -> None:
    accesslog.configure(tmp_path, max_bytes=10_000_000)
    accesslog.record("first")
    script = (
        "import sys; from pathlib import Path; from secretd import accesslog;"
        "accesslog.configure(Path(sys.argv[1]), max_bytes=1);"
        "accesslog.record('rotates')"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    accesslog.record("after")
    assert [e["event"] for e in accesslog.read(tmp_path)] == ["first", "rotates", "after"]
    assert json.loads((tmp_path / "access.log").read_text())["event"] == "after"


def test_audit_log_filters_and_prints(secretd: Runner, clean_environ: dict[str, Path]) -> None:
    state = clean_environ["state"]
    accesslog.configure(state)
    accesslog.record("run", run="sandbox-7", secrets=[{"name": "api_key", "version": "2"}])
    accesslog.record("fuse-open", file="other", pid=42, comm="cat", uid=0)
    shown = secretd("audit", "log", "--secret", "api_key", "--since", "1h")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.endswith(" run run=sandbox-7 secrets=api_key@2\n")
    assert len(shown.stdout.splitlines()) == 1
    as_json = secretd("audit", "log", "--json")
    assert [json.loads(line)["event"] for line in as_json.stdout.splitlines()] == [
        "run", "fuse-open"
    ]  # fmt: skip
    assert secretd("audit", "log", "--since", "2999-01-01").stdout == ""
    bad = secretd("audit", "log", "--since", "yesterday")
    assert bad.returncode == 2
    assert bad.stderr.startswith("secretd: invalid --since 'yesterday': give a duration")


def test_a_log_that_cannot_be_written_drops_the_event_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    accesslog.configure(tmp_path, max_bytes=10)
    accesslog.record("opens it")
    (tmp_path / "access.log").unlink()
    (tmp_path / "access.log").symlink_to(tmp_path / "elsewhere")  # planted after opening
    accesslog.record("first")
    accesslog.record("second")
    assert not (tmp_path / "elsewhere").exists()
    warnings = [r.getMessage() for r in caplog.records if "access log" in r.getMessage()]
    assert len(warnings) == 1 and "symbolic link" in warnings[0]


def test_audit_log_without_a_log_says_where_it_would_be(
    secretd: Runner, clean_environ: dict[str, Path]
) -> None:
    shown = secretd("audit", "log")
    assert (shown.returncode, shown.stdout) == (0, "")
    where = clean_environ["state"] / "access.log"
    assert shown.stderr == f"secretd: no access log at {where} yet (runs write it)\n"

"""Files a user names (``file:``, ``dotenv:``, ``--env-file``), read in-process: never
secretd's own credentials, never an endless or blocking read, one line for every refusal."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from secretd import safeopen
from secretd.store import MAX_VALUE

pytestmark = pytest.mark.root

TOKEN = "hvs.canary-vault-token-3c1f"
PASSPHRASE = "canary-passphrase-77d0"
DOTENV = (
    "BASE=https://example.test\n"
    "URL=${BASE}/v1\n"
    "LEAK=[${VAULT_TOKEN}][${SECRETD_PASSPHRASE:-unset}][${HOME}]\n"
)


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """secretd's own credentials in its environment, as a user with Vault and a store has."""
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    monkeypatch.setenv("SECRETD_PASSPHRASE", PASSPHRASE)


def test_dotenv_expands_the_files_own_keys_never_secretds_environment(
    secretd, tmp_path: Path, credentials: None
) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    result = secretd(
        "run", "--no-daemon", "--secret", "url=dotenv:.env#URL", "--secret",
        "leak=dotenv:.env#LEAK", "--", "cat", "/run/secrets/url", "/run/secrets/leak",
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "https://example.test/v1[][unset][]"


def test_env_file_values_are_literal(secretd, tmp_path: Path, credentials: None) -> None:
    (tmp_path / "app.env").write_text(DOTENV)
    result = secretd(
        "run", "--no-daemon", "--env-file", "app.env", "--", "sh", "-c", 'printf %s "$LEAK"'
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[${VAULT_TOKEN}][${SECRETD_PASSPHRASE:-unset}][${HOME}]"
    assert TOKEN not in result.stderr and PASSPHRASE not in result.stderr


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _args(kind: str, path: str) -> list[str]:
    if kind == "--env-file":
        return ["--env-file", path]
    ref = f"x=file:{path}" if kind == "file" else f"x=dotenv:{path}#A"
    return ["--secret", ref]


@pytest.mark.parametrize(("kind", "code"), [("file", 125), ("dotenv", 125), ("--env-file", 2)])
@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("/dev/zero", "it is a character device, not a regular file"),
        ("FIFO", "it is a FIFO, not a regular file"),
        ("DIR", "it is a directory, not a regular file"),
        ("BIG", f"it is 500 KiB or larger: secretd reads files smaller than {MAX_VALUE} bytes"),
    ],
)
def test_special_and_huge_files_are_one_line_at_once(
    secretd, tmp_path: Path, fifo: Path, kind: str, code: int, where: str, reason: str
) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"A=" + b"x" * MAX_VALUE)
    path = {"FIFO": str(fifo), "DIR": str(tmp_path), "BIG": str(big)}.get(where, where)
    started = time.monotonic()
    result = secretd("run", "--no-daemon", *_args(kind, path), "--", "true")
    assert time.monotonic() - started < 30  # a FIFO without a writer does not block
    assert result.returncode == code
    assert result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr
    assert f"cannot read {path!r}" in result.stderr or f"--env-file {path}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_just_under_the_limit_is_read(secretd, tmp_path: Path) -> None:
    (tmp_path / "v").write_bytes(b"v" * (MAX_VALUE - 1))
    result = secretd(
        "run", "--no-daemon", "--secret", "v=file:v", "--", "wc", "-c", "/run/secrets/v"
    )
    assert (result.returncode, result.stdout.split()[0]) == (0, str(MAX_VALUE - 1)), result.stderr


def test_the_read_limit_is_the_stores() -> None:
    assert safeopen.LIMIT == MAX_VALUE


def test_env_file_that_is_not_utf8_names_file_and_line(secretd, tmp_path: Path) -> None:
    (tmp_path / "app.env").write_bytes(b"MODE=prod\n# note\nNAME=caf\xe9\n")
    result = secretd("run", "--no-daemon", "--env-file", "app.env", "--", "true")
    assert (result.returncode, result.stderr) == (
        2,
        "secretd: --env-file app.env is not UTF-8 text (line 3): save it as UTF-8\n",
    )


def test_env_file_and_dotenv_hints_agree(secretd, tmp_path: Path) -> None:
    """Both kinds of .env file name the file and the line and ask for KEY=VALUE lines, each
    with the rules it follows."""
    (tmp_path / "app.env").write_text("MODE=prod\nBAD NAME=1\n")
    env_file = secretd("run", "--no-daemon", "--env-file", "app.env", "--", "true")
    assert (env_file.returncode, env_file.stderr) == (
        2,
        "secretd: invalid variable name 'BAD NAME' in --env-file app.env:2: use "
        "KEY=VALUE lines (Docker's --env-file rules: values are taken as written)\n",
    )
    dotenv = secretd("run", "--no-daemon", "--secret", "x=dotenv:app.env#MODE", "--", "true")
    assert (dotenv.returncode, dotenv.stderr) == (
        2,
        "secretd: cannot parse app.env at line 2: use KEY=VALUE lines (python-dotenv's rules: "
        "quote a value with spaces or '#')\n",
    )
    (tmp_path / "app.env").write_bytes(b"MODE=\xff\n")
    dotenv = secretd("run", "--no-daemon", "--secret", "x=dotenv:app.env#MODE", "--", "true")
    assert dotenv.stderr == "secretd: app.env is not UTF-8 text (line 1): save it as UTF-8\n"


def test_in_process_reads_follow_symbolic_links(secretd, tmp_path: Path) -> None:
    """secretd reading for its own user follows links (a Kubernetes secret volume is made
    of them): the kernel checks that user's rights all the way."""
    (tmp_path / "real").write_text("linked value")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = secretd("run", "--no-daemon", "--secret", "k=file:link", "--", "cat", "/run/secrets/k")
    assert (result.returncode, result.stdout) == (0, "linked value"), result.stderr


@pytest.mark.parametrize(("groups", "delivered"), [((65534,), True), ((65534, 4242), False)])
def test_a_directory_a_group_of_the_caller_may_write_is_the_callers(
    tmp_path: Path, groups: tuple[int, ...], delivered: bool
) -> None:
    """The daemon's rule, applied in this process: a root-only file in root's directory is
    delivered to nobody, unless a group nobody is in may write that directory."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, 0, 4242)
    shared.chmod(0o775)
    (shared / "key").write_text("root-only")
    (shared / "key").chmod(0o600)
    with safeopen.reading_for(65534, groups, trusted=False):
        if delivered:
            assert safeopen.read_file(shared / "key") == b"root-only"
        else:
            with pytest.raises(PermissionError, match=f"could have changed '{shared}'"):
                safeopen.read_file(shared / "key")

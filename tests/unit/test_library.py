"""The library API (docs/library.md): ``secretd.resolve`` and the names in ``__all__``.

Values come from a real file and a real local store in the test's state directory; the
lease bookkeeping uses a recording provider, as tests/unit/test_engine_leases.py does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import secretd
from secretd.backends import BaseProvider
from secretd.spec import Secret, SecretRef
from secretd.store import LocalStore
from tests.unit.test_cli import HEAVY

LIBRARY_MD = Path(__file__).parents[2] / "docs" / "library.md"


class LeasingProvider(BaseProvider):
    scheme = "lease"

    def __init__(self) -> None:
        self.revoked: list[str] = []

    def get(self, ref: SecretRef) -> Secret:
        return Secret(ref.name, "1", b"leased", lease_id=f"lease/{ref.name}", lease_duration=60)

    def revoke(self, secret: Secret) -> None:
        self.revoked.append(secret.lease_id or "")


def test_resolve_reads_a_file_and_a_stored_secret(tmp_path: Path) -> None:
    LocalStore.from_config(secretd.load_config()).create("api_key", b"from the store")
    token = tmp_path / "token"
    token.write_bytes(b"from a file\n")
    ref = secretd.parse_ref(f"tok=file:{token}")
    with secretd.resolve(["api_key", ref]) as (api_key, tok):
        assert (api_key.name, api_key.value, api_key.version) == ("api_key", b"from the store", "1")
        assert (tok.name, tok.value) == ("tok", b"from a file\n")
    with secretd.resolve("api_key") as secrets:  # one reference is a list of one
        assert [s.value for s in secrets] == [b"from the store"]


def test_resolve_gives_leases_back_when_the_block_ends() -> None:
    provider = LeasingProvider()
    broker = secretd.Broker(secretd.load_config(), loader=lambda scheme, config: provider)
    with secretd.resolve(["db=lease:db", "mq=lease:mq"], broker=broker) as secrets:
        assert [s.value for s in secrets] == [b"leased", b"leased"]
        assert provider.revoked == []
    assert provider.revoked == ["lease/db", "lease/mq"]
    with pytest.raises(KeyError), secretd.resolve(["db=lease:db"], broker=broker):
        raise KeyError("the caller's own failure")
    assert provider.revoked[2:] == ["lease/db"]


def test_resolve_names_a_missing_secret_and_a_bad_reference() -> None:
    with (
        pytest.raises(secretd.NotInStore, match="'api_kye' not found"),
        secretd.resolve(["api_kye"]),
    ):
        raise AssertionError("resolved a missing secret")
    with (
        pytest.raises(secretd.UsageError, match="invalid secret name"),
        secretd.resolve(["bad name"]),
    ):
        raise AssertionError("resolved a bad reference")


def test_every_exported_name_imports_and_import_secretd_stays_light() -> None:
    probe = """
import json, sys
before = set(sys.modules)
import secretd
light = sorted(m for m in set(sys.modules) - before if m.startswith(("secretd", "typing")))
secretd.resolve
names = {name: type(getattr(secretd, name)).__name__ for name in secretd.__all__}
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print(json.dumps([light, names, heavy, dir(secretd) == sorted(secretd.__all__)]))
"""
    result = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{probe}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    light, names, heavy, listed = json.loads(result.stdout)
    assert light == ["secretd"]  # not even typing: nothing until a name is used
    assert names["resolve"] == "function" and names["Engine"] == "type"
    assert heavy == [] and listed
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        secretd.nothing  # noqa: B018


def test_mypy_sees_the_types(tmp_path: Path) -> None:
    """An installed secretd is typed for its users' mypy (py.typed): without the marker
    mypy skips the package and every name is ``Any``."""
    (tmp_path / "use.py").write_text(
        "import secretd\n"
        "config: secretd.Config = secretd.load_config()\n"
        "with secretd.resolve(['x=file:/dev/null'], config) as secrets:\n"
        "    reveal_type(secrets)\n"
        "    reveal_type(secrets[0].value)\n"
        "version: int = secretd.parse_ref('x').name\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "c"), "use.py"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert 'Revealed type is "list[secretd.spec.Secret]"' in result.stdout, result.stdout
    assert 'Revealed type is "bytes"' in result.stdout
    assert 'use.py:6: error: Incompatible types in assignment (expression has type "str"' in (
        result.stdout
    )
    assert "import-untyped" not in result.stdout


def test_the_example_in_docs_library_md_runs_as_shown(tmp_path: Path) -> None:
    """The example stays true: its code, run as the page says, prints what the page shows
    (a stored secret and a CI variable in memory, then a sandboxed command reading one)."""
    page = LIBRARY_MD.read_text()
    code = re.search(r"```python\n(.*?)```", page, re.DOTALL)
    shown = re.search(r"\$ DEPLOY_TOKEN=abc123 python example.py\n(.*?)```", page, re.DOTALL)
    assert code and shown, "docs/library.md lost its example or its output"
    (tmp_path / "example.py").write_text(code[1])
    result = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        env={**os.environ, "DEPLOY_TOKEN": "abc123", "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == shown[1]


def test_a_runtime_failure_is_a_launch_error_exported_at_the_top() -> None:
    from secretd.errors import CommandNotFound, CommandNotRunnable

    assert "LaunchError" in secretd.__all__
    assert issubclass(CommandNotFound, secretd.LaunchError)
    assert issubclass(CommandNotRunnable, secretd.LaunchError)

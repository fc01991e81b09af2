"""A provider whose optional extra is not installed: one line naming the extra, exit 125.

The package is hidden from a real ``secretd`` by a ``sitecustomize`` on ``PYTHONPATH``
that makes importing it fail, as it fails where it was never installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Runner

BLOCKER = """
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {%r}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocked())
"""


@pytest.mark.parametrize(
    ("reference", "module", "extra"),
    [
        ("vault:secret/app#password", "hvac", "vault"),
        ("aws:prod/db", "boto3", "aws"),
        ("ssm:/app/db", "boto3", "aws"),
    ],
)
def test_missing_extra_is_one_line_naming_it(
    secretd: Runner, tmp_path: Path, reference: str, module: str, extra: str
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER % module)
    env = {**os.environ, "PYTHONPATH": str(site), "VAULT_TOKEN": "t", "AWS_REGION": "us-east-1"}
    result = secretd("run", "--secret", f"db={reference}", "--", "true", env=env)
    scheme = reference.split(":")[0]
    assert (result.returncode, result.stdout) == (125, "")
    assert result.stderr == (
        f"secretd: the {scheme} provider needs the Python package {module!r}, which is not "
        f"installed: pip install 'secretd[{extra}]'\n"
    )


def test_third_party_provider_that_cannot_be_imported_is_one_line(
    secretd: Runner, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    dist = site / "broken_provider-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-provider\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[secretd.providers]\nbroken = broken_mod:Provider\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = secretd("run", "--secret", "db=broken:thing", "--", "true", env=env)
    assert (result.returncode, result.stdout) == (125, "")
    assert result.stderr == (
        "secretd: the provider 'broken' (broken_mod:Provider) cannot be imported: "
        "ModuleNotFoundError: reinstall the package that provides it (broken_mod)\n"
    )

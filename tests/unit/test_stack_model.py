"""``runtime.stack.stack_model``: Docker Compose's normalised model made into one
``docker stack deploy`` takes, with secrets as external versions (no value, no path)."""

from __future__ import annotations

import json

import pytest

from secretd.errors import UsageError
from secretd.runtime.stack import stack_model

MODEL = {
    "name": "st",
    "networks": {"default": {"name": "st_default", "ipam": {}}},
    "secrets": {
        "pw": {"name": "st_pw", "file": "/srv/app/pw.txt"},
        "tok": {"name": "st_tok", "environment": "TOKEN", "x-secretd": {"source": "env:T"}},
        "unused": {"name": "st_unused", "file": "/srv/app/unused.txt"},
    },
    "configs": {"conf": {"name": "st_conf", "file": "/srv/app/c", "x-secretd": {"source": "x"}}},
    "services": {
        "app": {
            "image": "busybox:local",
            "entrypoint": None,
            "command": ["sleep", "1"],
            "networks": {"default": None},
            "healthcheck": {"test": ["CMD", "true"], "interval": None},
            "secrets": [
                {"source": "pw", "target": "app.pw", "uid": "1000", "gid": "1000", "mode": "0400"},
                {"source": "tok"},
            ],
            "configs": [{"source": "conf", "target": "/etc/c", "mode": "0440"}],
        }
    },
}


def test_secrets_become_external_versions_and_loader_quirks_are_undone() -> None:
    out = stack_model(MODEL, {"pw": "pw_0123456789ab", "tok": "tok_ba9876543210"})
    assert "name" not in out and out["version"] == "3.9"  # Docker CLI 20.10 needs one
    assert out["secrets"] == {
        "pw": {"name": "pw_0123456789ab", "external": True},
        "tok": {"name": "tok_ba9876543210", "external": True},
    }
    app = out["services"]["app"]
    assert "entrypoint" not in app
    assert app["networks"] == {"default": None}  # null here means "with defaults"
    assert app["healthcheck"] == {"test": ["CMD", "true"]}
    assert app["secrets"][0]["mode"] == 0o400 and app["configs"][0]["mode"] == 0o440
    assert out["configs"] == {"conf": {"name": "st_conf", "file": "/srv/app/c"}}
    text = json.dumps(out)
    assert "pw.txt" not in text and "TOKEN" not in text and "unused" not in text
    assert MODEL["services"]["app"]["secrets"][0]["mode"] == "0400"  # the input is kept


def test_a_bad_mode_is_a_usage_error() -> None:
    model = {"services": {"app": {"image": "x", "secrets": [{"source": "pw", "mode": "0999"}]}}}
    with pytest.raises(UsageError, match="mode"):
        stack_model(model, {"pw": "pw_0123456789ab"})

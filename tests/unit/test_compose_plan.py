"""The mapping of a compose model (as ``docker compose config`` normalises it) to secretd
references, without compose: owners, modes, targets, sources, and nothing shown."""

from __future__ import annotations

from secretd.compose.plan import make_plan
from secretd.refs import Binding

BINDINGS = {"secret": {"shared": Binding(source="vault:secret/app#token")}, "config": {}}


def plan(model: dict[str, object], environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return make_plan({"name": "proj", **model}, BINDINGS, environ or {})


def test_swarm_defaults_targets_and_the_owner_an_entry_gives() -> None:
    made = plan({
        "secrets": {"db": {"file": "/p/db.txt"}, "tok": {"external": True, "name": "shared"}},
        "configs": {"conf": {"content": "level=debug\n"}},
        "services": {"web": {
            "secrets": [
                {"source": "db", "target": "/run/secrets/db"},
                {"source": "db", "target": "sub/db.key", "uid": "1000", "mode": "0400"},
                {"source": "tok", "target": "/etc/tok", "gid": "50", "mode": "0440"},
            ],
            "configs": [{"source": "conf"}, {"source": "conf", "target": "etc/app.conf"}],
        }},
    })  # fmt: skip
    shown = [(u.target, u.uid, u.gid, u.mode, u.default_owner, u.source.shown)
             for u in made.services["web"]]  # fmt: skip
    assert shown == [
        ("/run/secrets/db", 0, 0, 0o444, True, "file:/p/db.txt"),
        ("/run/secrets/sub/db.key", 1000, 0, 0o400, False, "file:/p/db.txt"),
        ("/etc/tok", 0, 50, 0o440, False, "vault:secret/app#token"),
        ("/conf", 0, 0, 0o444, True, "(inline content)"),
        ("/etc/app.conf", 0, 0, 0o444, True, "(inline content)"),
    ]
    assert [u.ref().target for u in made.services["web"]][:3] == ["db", "sub/db.key", "/etc/tok"]


def test_a_config_s_content_never_shows_in_a_repr() -> None:
    made = plan({
        "configs": {"conf": {"content": "password=hunter2"}},
        "services": {"web": {"configs": [{"source": "conf"}]}},
    })  # fmt: skip
    assert "hunter2" not in repr(made)
    assert made.services["web"][0].source.content == b"password=hunter2"


def test_an_unused_broken_source_is_no_error_and_an_environment_source_needs_its_variable() -> None:
    made = plan({
        "secrets": {"api": {"environment": "API_KEY"}, "unused": {"environment": "NOPE"}},
        "services": {"web": {"secrets": [{"source": "api", "target": "/run/secrets/api"}]}},
    }, {"API_KEY": "v"})  # fmt: skip
    assert made.services["web"][0].source.shown == "env:API_KEY"

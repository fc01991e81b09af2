"""The nouns never show a value: not a secret's, not an ``-e`` variable's."""

from __future__ import annotations

from secretd.spec import RunSpec, Secret, SecretFile


def test_reprs_show_no_values() -> None:
    shown = [
        repr(Secret("api_key", "1", b"sk-live-value")),
        str(SecretFile("api_key", b"sk-live-value")),
        repr(RunSpec(command=("app",), env=(("API_KEY", "sk-live-value"),))),
    ]
    for text in shown:
        assert "sk-live-value" not in text, text
    assert shown[0] == "Secret(name='api_key', version='1', value=<redacted 13 bytes>)"

"""``_errormap``: the one reader of every backend's table of library exceptions."""

from __future__ import annotations

import json

import pytest

from secretd._errormap import Rule, mapped, only_from
from secretd.errors import AccessDenied, ProviderError, SecretNotFound

TABLE = (
    (KeyError, Rule(SecretNotFound, "nothing at {path}", "check {path!r}")),
    (LookupError, Rule(ProviderError, "{where} failed ({kind}): {detail}")),
    (PermissionError, lambda exc, names: AccessDenied(f"denied {names['path']}")),
    (ValueError, only_from(("json.",), Rule(ProviderError, "damaged answer for {path}"))),
)


def test_first_listed_class_wins_and_library_text_stays_out() -> None:
    with pytest.raises(SecretNotFound) as caught, mapped(TABLE, path="a/b"):
        raise KeyError("hunter2")
    assert caught.value.line() == "nothing at a/b: check 'a/b'"
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None
    assert caught.value.fields == {}


def test_derived_values_are_computed_only_when_a_template_uses_them() -> None:
    used: list[BaseException] = []

    def detail(exc: BaseException) -> str:
        used.append(exc)
        return "explained"

    with pytest.raises(ProviderError, match=r"^srv failed \(IndexError\): explained$"):
        with mapped(TABLE, {"provider": "p"}, where="srv", path="x", detail=detail):
            raise IndexError(3)
    with pytest.raises(SecretNotFound), mapped(TABLE, where="srv", path="x", detail=detail):
        raise KeyError(1)
    assert len(used) == 1


def test_functions_and_fields() -> None:
    fields = {"provider": "vault", "method": "GET", "path": "secret/app"}
    with pytest.raises(AccessDenied, match="^denied secret/app$") as caught:
        with mapped(TABLE, fields, path="secret/app"):
            raise PermissionError("token s.abc")
    assert caught.value.fields == fields


def test_unlisted_and_declined_exceptions_pass_untouched() -> None:
    with pytest.raises(OSError, match="disk"), mapped(TABLE, path="x"):
        raise OSError("disk")
    with pytest.raises(ValueError, match="ours"), mapped(TABLE, path="x"):
        raise ValueError("ours")  # not raised inside json: a bug, shown as is
    with pytest.raises(ProviderError, match="^damaged answer for x$"), mapped(TABLE, path="x"):
        json.loads("{")

"""What every provider promises, as one class of tests each provider's suite subclasses
(keyring's ``keyring/testing/backend.py``).

A subclass gives two fixtures over the real thing (a store in a temporary state
directory, the environment, files, OpenBao, moto): ``provider``, the provider under test,
and ``backend``, a ``Backend`` that writes secrets there the way a user or an operator
would. The tests then hold the provider to the contract: ``get`` gives the value and a
version; ``version`` agrees with ``get``, stays put and changes after an update; a
missing secret is ``SecretNotFound`` in one line; leases (where there are any) renew and
go back; and the value never shows in ``repr``/``str`` of the secret, in any error
(its line, args, hint, fields or formatted traceback) or in any log record at DEBUG.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Iterator

import pytest

from secretd.backends import Provider
from secretd.errors import SecretdError, SecretNotFound
from secretd.refs import parse_ref
from secretd.spec import Secret, SecretRef


class Backend:
    """A provider's real store, written from outside the provider.

    ``put`` and ``absent`` return reference texts (``NAME=scheme:...``), as a user writes
    them on the command line.
    """

    def put(self, name: str, value: bytes) -> str:
        """Store ``value`` as a new secret; the reference that reads it."""
        raise NotImplementedError

    def change(self, source: str, value: bytes) -> None:
        """Give the secret ``source`` refers to a new value, as a rotation would."""
        raise NotImplementedError

    def absent(self, name: str) -> str:
        """A reference to a secret that is not there."""
        raise NotImplementedError

    def misread(self, source: str) -> str | None:
        """The secret of ``source`` asked for wrongly (a field it lacks, a version it
        never had), or ``None`` where the scheme has no such form."""
        return None

    def leased(self, name: str) -> str | None:
        """A reference to a secret issued with a lease, or ``None`` (no leases here)."""
        return None

    def lease_alive(self, lease_id: str) -> bool:
        raise NotImplementedError


def fresh_value() -> bytes:
    """A value no other test (and no fixture) uses, easy to find in any text."""
    return f"contract-value-{uuid.uuid4().hex}".encode()


def assert_clean(error: BaseException, *values: bytes) -> None:
    """No value in an error: not its line, args, hint or fields, nor the formatted
    traceback with everything chained to it."""
    texts = [str(error), repr(error), *map(repr, error.args)]
    texts.append("".join(traceback.format_exception(error)))
    if isinstance(error, SecretdError):
        texts += [str(error.hint), repr(dict(error.fields))]
    for value in values:
        for text in texts:
            assert value.decode() not in text


class ProviderContract:
    """Subclass with fixtures ``provider`` and ``backend``; every test runs as is."""

    @pytest.fixture
    def values(self, caplog: pytest.LogCaptureFixture) -> Iterator[list[bytes]]:
        """The values a test stored; none of them may appear in a log record."""
        stored: list[bytes] = []
        caplog.set_level(logging.DEBUG, logger="secretd")
        yield stored
        for record in caplog.get_records("setup") + caplog.get_records("call"):
            text = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
            for value in stored:
                assert value.decode() not in text, record.name

    def store(self, backend: Backend, values: list[bytes]) -> tuple[SecretRef, bytes]:
        value = fresh_value()
        values.append(value)
        return parse_ref(backend.put("contract", value)), value

    def test_get_gives_the_value_and_a_version(
        self, provider: Provider, backend: Backend, values: list[bytes]
    ) -> None:
        ref, value = self.store(backend, values)
        secret = provider.get(ref)
        assert (secret.name, secret.value) == ("contract", value)
        assert secret.version and value.decode() not in secret.version
        assert provider.get_many([ref, ref]) == [secret, secret]

    def test_version_agrees_with_get_and_changes_after_an_update(
        self, provider: Provider, backend: Backend, values: list[bytes]
    ) -> None:
        ref, _ = self.store(backend, values)
        first = provider.version(ref)
        assert isinstance(first, str) and first == provider.get(ref).version
        assert provider.version(ref) == first
        update = fresh_value()
        values.append(update)
        backend.change(ref.source, update)
        assert provider.version(ref) != first
        assert provider.get(ref).value == update

    def test_value_is_in_no_repr_or_str(
        self, provider: Provider, backend: Backend, values: list[bytes]
    ) -> None:
        ref, value = self.store(backend, values)
        secret = provider.get(ref)
        for text in (repr(secret), str(secret), repr([secret]), f"{secret}"):
            assert value.decode() not in text

    def test_a_missing_secret_is_not_found_in_one_line(
        self, provider: Provider, backend: Backend, values: list[bytes]
    ) -> None:
        self.store(backend, values)
        with pytest.raises(SecretNotFound) as caught:
            provider.get(parse_ref(backend.absent("gone")))
        line = caught.value.line()
        assert line and "\n" not in line and line == str(caught.value)
        assert_clean(caught.value, *values)

    def test_errors_hold_no_value(
        self, provider: Provider, backend: Backend, values: list[bytes]
    ) -> None:
        ref, value = self.store(backend, values)
        wrong = backend.misread(ref.source)
        if wrong is None:
            pytest.skip("the scheme has no way to ask for a present secret wrongly")
        with pytest.raises(SecretdError) as caught:
            provider.get(parse_ref(wrong))
        assert "\n" not in caught.value.line()
        assert_clean(caught.value, value)

    def test_leases_renew_and_go_back(
        self, provider: Provider, backend: Backend, values: list[bytes]
    ) -> None:
        source = backend.leased("leased")
        if source is None:
            assert_leaseless(provider, self.store(backend, values)[0])
            return
        secret = provider.get(parse_ref(source))
        assert secret.lease_id and backend.lease_alive(secret.lease_id)
        values.append(secret.value)
        renewed = provider.renew(secret)
        assert renewed is None or renewed.lease_id == secret.lease_id
        provider.revoke(secret)
        assert not backend.lease_alive(secret.lease_id)
        provider.revoke(secret)  # a lease already given back is no error


def assert_leaseless(provider: Provider, ref: SecretRef) -> None:
    """Secrets without a lease renew to themselves and give nothing back."""
    secret: Secret = provider.get(ref)
    assert secret.lease_id is None
    assert provider.renew(secret) == secret
    provider.revoke(secret)

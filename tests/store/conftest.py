"""Fixtures for the encrypted local store: a store in the test's own state directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretd.config import Config, load_config
from secretd.sealing import Passphrases
from secretd.store import LocalStore
from tests.store.storedb import StoreFactory


def no_prompt(label: str, confirm: bool) -> str:
    raise AssertionError(f"unexpected passphrase prompt: {label}")


@pytest.fixture
def config() -> Config:
    """The configuration a user would get: state dir from SECRETD_STATE_DIR (conftest)."""
    return load_config()


@pytest.fixture
def state_dir(config: Config) -> Path:
    return config.state_dir


@pytest.fixture
def make_store(config: Config) -> StoreFactory:
    """A LocalStore over the test's state dir; passphrases only from the given environment."""

    def make(passphrase: str | None = None, new: str | None = None, **kwargs: object) -> LocalStore:
        environ = {}
        if passphrase is not None:
            environ["SECRETD_PASSPHRASE"] = passphrase
        if new is not None:
            environ["SECRETD_NEW_PASSPHRASE"] = new
        store = LocalStore.from_config(config, Passphrases(environ, prompt=no_prompt))
        for key, value in kwargs.items():
            setattr(store, key, value)
        return store

    return make


@pytest.fixture
def store(make_store: StoreFactory) -> LocalStore:
    return make_store()

"""The provider contract (tests/support/provider_contract.py) for ``aws:`` (Secrets
Manager) and ``ssm:`` (Parameter Store) against the session's moto_server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from secretd.backends.aws import AwsProvider
from secretd.backends.ssm import SsmProvider
from secretd.config import Config
from secretd.errors import SecretNotFound
from secretd.refs import parse_ref
from tests.aws.servers import REGION, Moto
from tests.support.provider_contract import Backend, ProviderContract

pytestmark = pytest.mark.aws


def settings(moto: Moto) -> dict[str, Any]:
    return {"endpoint_url": moto.url, "region": REGION}


class SecretsManagerBackend(Backend):
    def __init__(self, client: Any) -> None:
        self.client = client

    def put(self, name: str, value: bytes) -> str:
        secret_id = f"contract/{uuid.uuid4().hex[:10]}"
        self.client.create_secret(Name=secret_id, SecretString=value.decode())
        return f"{name}=aws:{secret_id}"

    def change(self, source: str, value: bytes) -> None:
        self.client.put_secret_value(
            SecretId=source.removeprefix("aws:"), SecretString=value.decode()
        )

    def absent(self, name: str) -> str:
        return f"{name}=aws:contract/absent-{uuid.uuid4().hex[:10]}"

    def misread(self, source: str) -> str:
        return f"{source}#key"  # the value is no JSON object


class TestSecretsManager(ProviderContract):
    @pytest.fixture
    def backend(self, moto: Moto) -> SecretsManagerBackend:
        return SecretsManagerBackend(moto.client("secretsmanager"))

    @pytest.fixture
    def provider(self, moto: Moto, config: Callable[..., Config]) -> AwsProvider:
        return AwsProvider.from_config(config(aws=settings(moto)))

    def test_errors_name_the_request(
        self, provider: AwsProvider, backend: SecretsManagerBackend, moto: Moto
    ) -> None:
        with pytest.raises(SecretNotFound) as caught:
            provider.get(parse_ref(backend.absent("gone")))
        fields = {"provider": "aws", "region": REGION, "endpoint": moto.url}
        assert caught.value.fields == fields


class ParameterStoreBackend(Backend):
    def __init__(self, client: Any) -> None:
        self.client = client

    def _write(self, name: str, value: bytes) -> None:
        self.client.put_parameter(
            Name=name, Value=value.decode(), Type="SecureString", Overwrite=True
        )

    def put(self, name: str, value: bytes) -> str:
        parameter = f"/contract/{uuid.uuid4().hex[:10]}"
        self._write(parameter, value)
        return f"{name}=ssm:{parameter}"

    def change(self, source: str, value: bytes) -> None:
        self._write(source.removeprefix("ssm:"), value)

    def absent(self, name: str) -> str:
        return f"{name}=ssm:/contract/absent-{uuid.uuid4().hex[:10]}"

    def misread(self, source: str) -> str:
        return f"{source}?version=99"


class TestParameterStore(ProviderContract):
    @pytest.fixture
    def backend(self, moto: Moto) -> ParameterStoreBackend:
        return ParameterStoreBackend(moto.client("ssm"))

    @pytest.fixture
    def provider(self, moto: Moto, config: Callable[..., Config]) -> SsmProvider:
        return SsmProvider.from_config(config(aws=settings(moto)))

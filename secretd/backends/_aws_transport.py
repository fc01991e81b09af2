"""botocore's requests sent through secretd's bounded HTTP (``_http``): one deadline and
one size cap per request, and no answer taken from another origin than the endpoint's.

botocore's own transport reads any answer whole and bounds socket reads, not requests.
It offers no way to bound them, but it lets a ``before-send`` handler answer instead of
it; that handler sends the signed request with urllib3 (as botocore would: no redirects
followed, no retries of its own, so botocore's retry modes apply unchanged) and turns
urllib3's failures into the botocore exceptions those retry modes know.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._http import CHUNK, Limits, check_redirect, deadline, pool_classes, read_capped


class _Body:
    """What ``AWSResponse`` reads a body from: the bytes already read."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


class BoundedTransport:
    """Sends one client's requests to ``endpoint`` within ``limits``.

    Args:
        endpoint: the client's endpoint URL: answers redirecting elsewhere are refused.
        verify: a CA bundle path, True (certifi's, as botocore), or False.
        timeouts: (connect, read) seconds per socket operation.
    """

    def __init__(
        self, endpoint: str, limits: Limits, verify: bool | str, timeouts: tuple[float, float]
    ) -> None:
        import urllib3
        from botocore.httpsession import get_cert_path

        self._endpoint = endpoint
        self._limits = limits
        self._timeout = urllib3.Timeout(connect=timeouts[0], read=timeouts[1])
        self._tls: dict[str, Any] = (
            {"cert_reqs": "CERT_REQUIRED", "ca_certs": get_cert_path(verify)}  # type: ignore[arg-type]
            if verify
            else {"cert_reqs": "CERT_NONE"}
        )
        self._managers: dict[str | None, Any] = {}

    def register(self, client: Any) -> None:
        client.meta.events.register("before-send", self.send)

    def _manager(self, url: str) -> Any:
        """A pool manager for ``url``: direct, or through the proxy the environment names
        (``HTTPS_PROXY``, ``NO_PROXY``), as botocore picks it."""
        import urllib3
        from botocore.utils import get_environ_proxies

        proxy = get_environ_proxies(url).get(url.split(":", 1)[0])
        if proxy not in self._managers:
            manager = (
                urllib3.ProxyManager(proxy, **self._tls)
                if proxy
                else urllib3.PoolManager(**self._tls)
            )
            manager.pool_classes_by_scheme = pool_classes()
            self._managers[proxy] = manager
        return self._managers[proxy]

    def send(self, request: Any, **_: Any) -> Any:
        """Answer botocore's ``before-send`` event with the response, read within limits."""
        from botocore import exceptions as bx
        from botocore.awsrequest import AWSResponse
        from urllib3 import exceptions as ux

        url = str(request.url)
        with deadline(self._limits.timeout):
            try:
                response = self._manager(url).urlopen(
                    request.method, url, body=request.body, headers=dict(request.headers.items()),
                    retries=False, redirect=False, assert_same_host=False, preload_content=False,
                    decode_content=False, timeout=self._timeout,
                )  # fmt: skip
                try:
                    check_redirect(self._endpoint, url, response.status, response.headers)
                    body = read_capped(
                        response.stream(CHUNK), self._limits.max_size,
                        response.headers.get("Content-Length"),
                    )  # fmt: skip
                except BaseException:
                    response.close()
                    raise
                finally:
                    response.release_conn()
            except ux.NewConnectionError as exc:
                raise bx.EndpointConnectionError(endpoint_url=url, error=exc) from None
            except ux.ConnectTimeoutError as exc:
                raise bx.ConnectTimeoutError(endpoint_url=url, error=exc) from None
            except ux.ReadTimeoutError as exc:
                raise bx.ReadTimeoutError(endpoint_url=url, error=exc) from None
            except ux.SSLError as exc:
                raise bx.SSLError(endpoint_url=url, error=exc) from None
            except ux.ProxyError as exc:
                raise bx.ProxyConnectionError(
                    proxy_url="(from the environment)", error=exc
                ) from None
            except (ux.ProtocolError, OSError) as exc:
                raise bx.ConnectionClosedError(
                    endpoint_url=url, request=request, error=exc
                ) from None
            except ux.HTTPError as exc:
                raise bx.HTTPClientError(error=exc) from None
        return AWSResponse(url, response.status, response.headers, _Body(body))

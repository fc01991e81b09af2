"""The HTTP session secretd hands hvac: urllib3 retries Vault's reads (never a request
that creates or renews something), every request has one deadline and a size cap, and
no redirect takes the token to another host.

A redirect to the same scheme, host and port is followed (up to three): the token goes
where it was going anyway. Any other is refused: Vault's standbys redirect to the active
node, but requests would resend ``X-Vault-Token`` to whatever host a server names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._http import CHUNK, Limits, check_redirect, deadline, pool_classes, read_capped

if TYPE_CHECKING:
    import requests
    from urllib3.util.retry import Retry

# Vault's reads. POST and PUT log in, issue certificates and credentials, renew and
# revoke: sent twice, they do it twice.
RETRY_METHODS = frozenset({"GET", "HEAD", "LIST"})
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF = 0.25  # seconds before the second retry, doubled for each further one
MAX_REDIRECTS = 3


def retry(count: int) -> Retry:
    """``count`` retries: connection failures for any method (nothing was sent), 5xx,
    429 and broken answers for reads only; Retry-After is ignored (a hostile server could
    ask for a day)."""
    from urllib3.util.retry import Retry

    return Retry(
        total=count,
        connect=count,
        read=count,
        status=count,
        other=0,
        allowed_methods=RETRY_METHODS,
        status_forcelist=RETRY_STATUS,
        backoff_factor=BACKOFF,
        backoff_max=2.0,
        raise_on_status=False,
        respect_retry_after_header=False,
    )


def new_session(base: str, limits: Limits, retries: int, verify: bool | str) -> requests.Session:
    """A requests session that talks to ``base`` within ``limits``."""
    import requests
    from requests.adapters import HTTPAdapter

    class BoundedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pool_classes()

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            if not proxy.lower().startswith("socks"):  # SOCKS pools have classes of their own
                manager.pool_classes_by_scheme = pool_classes()
            return manager

        def send(  # type: ignore[override]  # passes requests' keywords on untouched
            self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any
        ) -> requests.Response:
            with deadline(limits.timeout):
                response = super().send(request, stream=True, **kwargs)
                try:
                    check_redirect(base, str(response.url), response.status_code, response.headers)
                    response._content = read_capped(
                        response.iter_content(CHUNK),
                        limits.max_size,
                        response.headers.get("Content-Length"),
                    )
                except BaseException:
                    response.close()
                    raise
            return response

    session = requests.Session()
    session.verify = verify
    session.max_redirects = MAX_REDIRECTS
    adapter = BoundedAdapter(max_retries=retry(retries))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session

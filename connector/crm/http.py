"""The HTTP session of the CRM calls."""

from urllib.parse import urlsplit

import requests


class CRMSession(requests.Session):
    """requests' Session that reads the environment's proxy and certificate settings
    (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE …) once per scheme and host instead of on every
    request: requests walks os.environ twice a request for them, a quarter of a CRM call's
    CPU in the worker (0.66 of 2.5 ms, bench/worker_bench.py). The environment of a running
    connector does not change. A request that passes its own proxies, verify, cert or stream
    is merged as requests does it."""

    def __init__(self):
        super().__init__()
        self._environment: dict[tuple[str, str], dict] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        """requests' settings for ``url`` (proxies, stream, verify, cert), kept per origin."""
        if proxies or stream is not None or verify is not None or cert is not None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        origin = tuple(urlsplit(url)[:2])
        settings = self._environment.get(origin)
        if settings is None:
            settings = self._environment[origin] = super().merge_environment_settings(
                url, {}, None, None, None)
        return {**settings, "proxies": dict(settings["proxies"])}

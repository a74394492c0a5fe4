"""A rate-limited request whose body is also too large gets 413 or 429, never a 500."""

import pytest

from connector.web.app import create_app

pytestmark = pytest.mark.integration


def test_oversized_posts_past_the_rate_limit_get_429_not_500(settings, redis_conn):
    client = create_app(settings, connection=redis_conn).test_client()
    body = {"lang": "en", "pad": "x" * 70_000}  # over the 64 KiB limit
    statuses = [client.post("/u/any-token", data=body).status_code for _ in range(12)]
    assert statuses[:10] == [413] * 10
    assert statuses[10:] == [429, 429]

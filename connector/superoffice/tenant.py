"""Where the tenant's API is, and whether it is up: SuperOffice Online's state API.

A tenant's address "will change routinely to balance the load" (docs/en/apps/tenant-status/
status-page.md): ``GET {login}/api/state/{ContextIdentifier}`` (check-status.md) answers
``{ContextIdentifier, Endpoint, State, IsRunning, ValidUntil, Api}``. The answer is shared by
every process through Redis until its ValidUntil, and looked up again when a call meets the
old address (421 Misdirected Request, a redirect, or a host that refuses or does not resolve).

``FixedEndpoint`` is the on-site case: SUPEROFFICE_API_URL, never looked up.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta

import redis
import requests

from connector import JSON_HEADERS, defaults, keys
from connector.crm.http import CRMSession
from connector.crm.types import TenantState
from connector.exceptions import CRMError, TenantUnavailableError
from connector.superoffice.parse import parse_date
from connector.times import now, utc

log = logging.getLogger(__name__)

RUNNING_STATES = ("Running", "OnlineMaintenance")
"""States in which the tenant's API is available (status-page.md, "IsRunning")."""

GONE_STATES = ("Deleted", "Deleting", "DeleteFailed")
"""States after which the tenant will not come back: jobs fail rather than wait."""


def parse_tenant_state(body: object, context_identifier: str) -> TenantState:
    """Read a state API answer (status-page.md).

    Raises:
        CRMError: (transient) the answer is not a state of this tenant.
    """
    if not isinstance(body, dict) or body.get("ContextIdentifier") != context_identifier:
        raise CRMError(f"SuperOffice's state API gave no state for {context_identifier}")
    api = body.get("Api")
    state = str(body.get("State") or "Unknown")
    try:
        valid_until = utc(parse_date(body.get("ValidUntil"), where="ValidUntil")
                          or now()).isoformat()
    except CRMError:
        valid_until = now().isoformat()
    return TenantState(
        context_identifier=context_identifier,
        state=state,
        is_running=body.get("IsRunning") is True and state in RUNNING_STATES,
        api_url=api.rstrip("/") + "/v1" if isinstance(api, str) and api.startswith("http")
        else None,
        valid_until=valid_until,
    )


def decide_tenant_availability(state: TenantState, at: datetime) -> TenantUnavailableError | None:
    """The error a call to this tenant meets at ``at``, or None when its API is available. A
    job waits until the answer's ValidUntil ("when to check next time", status-page.md),
    within TENANT_STATE_MIN_AGE and TENANT_UNAVAILABLE_RETRY_AFTER."""
    if state.is_running and state.api_url:
        return None
    if state.state in GONE_STATES:
        return TenantUnavailableError(
            f"SuperOffice says tenant {state.context_identifier} is {state.state} — check "
            f"SUPEROFFICE_CONTEXT_IDENTIFIER", state=state.state, permanent=True,
            setting="SUPEROFFICE_CONTEXT_IDENTIFIER")
    return TenantUnavailableError(
        f"tenant {state.context_identifier} is {state.state} (SuperOffice's state API); "
        f"jobs wait until it runs again", state=state.state,
        retry_after=min(cache_seconds(state, at), defaults.TENANT_UNAVAILABLE_RETRY_AFTER))


def cache_seconds(state: TenantState, at: datetime) -> int:
    """How long to keep an answer: until its ValidUntil, within TENANT_STATE_MIN_AGE and
    TENANT_STATE_MAX_AGE, and at most TENANT_UNAVAILABLE_RETRY_AFTER while the tenant is not
    running."""
    left = (datetime.fromisoformat(state.valid_until) - at).total_seconds()
    longest = (defaults.TENANT_STATE_MAX_AGE if state.is_running
               else defaults.TENANT_UNAVAILABLE_RETRY_AFTER)
    return int(min(max(left, defaults.TENANT_STATE_MIN_AGE), longest))


class FixedEndpoint:
    """SUPEROFFICE_API_URL: one address, never looked up."""

    discovered = False

    def __init__(self, api_url: str):
        self._api_url = api_url.rstrip("/")

    def __repr__(self) -> str:
        return f"FixedEndpoint({self._api_url!r})"

    def api_url(self) -> str:
        """The configured address."""
        return self._api_url

    def state(self) -> None:
        """A fixed address has no state to look up."""
        return None

    def relocate(self, stale: str) -> str:
        """A fixed address cannot move: return it unchanged."""
        return self._api_url


class DiscoveredEndpoint:
    """The tenant's address from the state API, shared through Redis.

    Args:
        state_url: ``{login}/api/state/{ContextIdentifier}``.
        context_identifier: the tenant.
        connection: the installation's Redis.
        hint: the API address the last sign-in's JWT named, used while the state API cannot
            be reached.
        session, timeout: for the state API calls.
    """

    discovered = True

    def __init__(self, state_url: str, context_identifier: str, connection: redis.Redis, *,
                 hint: Callable[[], str | None] = lambda: None,
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = defaults.CRM_TIMEOUT):
        self.state_url = state_url
        self.context_identifier = context_identifier
        self._redis = connection
        self._hint = hint
        self._session = session or CRMSession()
        self.timeout = timeout
        self._known: tuple[TenantState, float] | None = None
        """This process's copy of the answer and when (time.monotonic) it lapses: a CRM call
        needs no Redis round trip, and while the state API is down it is not asked per call."""

    def __repr__(self) -> str:
        return f"DiscoveredEndpoint({self.state_url!r})"

    def api_url(self) -> str:
        """The tenant's REST base now.

        Raises:
            TenantUnavailableError: the tenant is not running (transient) or gone (permanent).
            CRMError: (transient) the state API cannot be reached and no sign-in named an
                address.
        """
        return self._usable(self.state())

    def relocate(self, stale: str) -> str:
        """A call to ``stale`` met a moved tenant: the address another process has found
        meanwhile, else a fresh look-up."""
        state = self.cached()
        if state is not None and state.api_url and state.api_url != stale:
            return self._usable(state)
        log.info("superoffice.tenant_relocating context=%s", self.context_identifier)
        return self._usable(self.look_up())

    def state(self) -> TenantState:
        """This process's answer, else the shared one, else a fresh look-up.

        Raises:
            CRMError: (transient) the state API cannot be reached.
        """
        if self._known is not None and time.monotonic() < self._known[1]:
            return self._known[0]
        return self.cached() or self.look_up()

    def cached(self) -> TenantState | None:
        """The shared answer, while it holds."""
        key = keys.tenant_state(self.context_identifier)
        with self._redis.pipeline() as pipeline:
            raw, ttl = pipeline.get(key).ttl(key).execute()
        if raw is None or ttl <= 0:
            return None
        return self._keep(TenantState(**json.loads(raw)), ttl)

    def look_up(self) -> TenantState:
        """Ask the state API and share the answer until its ValidUntil.

        Raises:
            CRMError: (transient) the state API cannot be reached or answered nonsense, and no
                sign-in named an address to use meanwhile.
        """
        try:
            response = self._session.get(self.state_url, timeout=self.timeout,
                                         headers=JSON_HEADERS)
            if response.status_code != 200:
                raise CRMError(f"SuperOffice's state API answered {response.status_code}",
                               status=response.status_code)
            state = parse_tenant_state(response.json(), self.context_identifier)
        except (requests.exceptions.RequestException, ValueError, CRMError) as error:
            hint = self._hint()
            if hint is None:
                raise CRMError(f"SuperOffice's state API ({self.state_url}) cannot tell where "
                               f"tenant {self.context_identifier} is: {error}") from None
            log.warning("superoffice.state_api_unavailable context=%s using the sign-in's "
                        "address", self.context_identifier)
            lapse = defaults.TENANT_STATE_MIN_AGE
            return self._keep(TenantState(self.context_identifier, "Running", True, hint,
                                          (now() + timedelta(seconds=lapse)).isoformat()), lapse)
        seconds = cache_seconds(state, now())
        self._redis.set(keys.tenant_state(self.context_identifier), json.dumps(asdict(state)),
                        ex=seconds)
        log.info("superoffice.tenant_state context=%s state=%s", self.context_identifier,
                 state.state)
        return self._keep(state, seconds)

    def _keep(self, state: TenantState, seconds: float) -> TenantState:
        self._known = (state, time.monotonic() + seconds)
        return state

    @staticmethod
    def _usable(state: TenantState) -> str:
        error = decide_tenant_availability(state, now())
        if error is not None:
            raise error
        return state.api_url

"""What the client sends as credentials, and what it does when the CRM answers 401.

Two kinds, one interface (``headers()``, ``renew(rejected)``, ``variable``):

* ``FixedCredentials`` — an access token or ticket from the environment (on-site, or a token
  made by hand). A 401 cannot be fixed here: the error names the variable to renew.
* ``SystemUserCredentials`` — SuperOffice Online's system user ticket, shared by every web
  and worker process through Redis. Renewed under a lock (ten workers meeting a 401 at once
  sign in once), on a 401 and before it lapses; sign-ins are rate-bounded, and after a refusal
  nobody signs in again for SIGN_IN_REFUSED_PAUSE, so a broken key never hammers the login.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import redis

from connector import defaults, keys
from connector.exceptions import SignInError
from connector.superoffice.system_user import SystemUserLogin, Ticket

log = logging.getLogger(__name__)


class FixedCredentials:
    """An access token (``Bearer``) or ticket (``SOTicket``) that never changes, with the
    optional application token (``SO-AppToken``)."""

    def __init__(self, *, access_token: str | None = None, ticket: str | None = None,
                 app_token: str | None = None):
        if bool(access_token) == bool(ticket):
            raise ValueError("FixedCredentials needs exactly one of access_token or ticket")
        self.variable = "SUPEROFFICE_ACCESS_TOKEN" if access_token else "SUPEROFFICE_TICKET"
        self._headers = {"Authorization": (f"Bearer {access_token}" if access_token
                                           else f"SOTicket {ticket}")}
        if app_token:
            self._headers["SO-AppToken"] = app_token

    def __repr__(self) -> str:  # never show the token
        return f"FixedCredentials({self.variable})"

    def headers(self) -> dict[str, str]:
        """The headers that authenticate a call."""
        return dict(self._headers)

    def renew(self, rejected: dict[str, str]) -> str | None:
        """A fixed credential cannot be renewed: return None (the 401 is permanent)."""
        return None

    @property
    def api_url_hint(self) -> str | None:
        """No API address comes with a fixed credential."""
        return None


class SystemUserCredentials:
    """The system user's ticket, signed in for when needed and shared through Redis.

    Args:
        login: signs in (one POST) and validates the answer.
        connection: the Redis every process of the installation uses.
        clock: seconds since the epoch (tests pass their own).
    """

    variable = "SUPEROFFICE_SYSTEM_USER_TOKEN"

    def __init__(self, login: SystemUserLogin, connection: redis.Redis, *,
                 clock: Callable[[], float] = time.time):
        self.login = login
        self._redis = connection
        self._clock = clock
        self._fingerprint = login.fingerprint
        self._secret = login.system_user.client_secret
        self._ticket: Ticket | None = None
        self._expires = 0.0

    def __repr__(self) -> str:
        return f"SystemUserCredentials({self.login.system_user!r})"

    def headers(self) -> dict[str, str]:
        """``Authorization: SOTicket <ticket>`` and ``SO-AppToken: <client secret>``
        (auth-application/index.md), signing in first when no process holds a ticket.

        Raises:
            SignInError: see ``renew``.
        """
        ticket = self.current()
        return {"Authorization": f"SOTicket {ticket.value}", "SO-AppToken": self._secret}

    def current(self) -> Ticket:
        """The installation's ticket: this process's copy, else the shared one, else a new one.

        Raises:
            SignInError: see ``renew``.
        """
        if self._ticket is not None and self._clock() < self._expires:
            return self._ticket
        if not self._load_shared():
            self._sign_in(rejected=None)
        return self._ticket

    def renew(self, rejected: dict[str, str]) -> str:
        """The CRM answered 401 to ``rejected`` headers: get a ticket other than that one.
        Return ``"shared"`` when another process had signed in meanwhile (its ticket may be
        about to lapse too), ``"fresh"`` after a sign-in of our own.

        Raises:
            SignInError: permanent (SuperOffice refused, or refused within the last
                SIGN_IN_REFUSED_PAUSE); transient when the login is down, another process's
                sign-in took longer than SIGN_IN_LOCK_WAIT, or SIGN_INS_PER_MINUTE is spent.
        """
        stale = rejected.get("Authorization", "").removeprefix("SOTicket ")
        return "fresh" if self._sign_in(rejected=stale) else "shared"

    @property
    def api_url_hint(self) -> str | None:
        """The tenant's API address the last sign-in's JWT named, if any."""
        return self._ticket.api_url if self._ticket else None

    # -- internals ------------------------------------------------------------------------

    def _sign_in(self, rejected: str | None) -> bool:
        """Make sure this process holds a ticket other than ``rejected``; True when it signed
        in for it, False when another process had."""
        lock = self._redis.lock(keys.sign_in_lock(self._fingerprint),
                                timeout=sum(self.login.timeout) * 2 + 5,
                                blocking_timeout=defaults.SIGN_IN_LOCK_WAIT)
        if not lock.acquire():
            raise SignInError("another process is signing in to SuperOffice and has not "
                              "finished; trying again later", retry_after=5)
        try:
            if self._load_shared() and self._ticket.value != rejected:
                return False  # another process renewed it while we waited
            refusal = self._redis.get(keys.sign_in_refused(self._fingerprint))
            if refusal is not None:
                message, _, setting = refusal.decode().rpartition("\n")
                raise SignInError(message, setting=setting or None, permanent=True)
            self._count_attempt()
            try:
                ticket = self.login.sign_in()
            except SignInError as error:
                if error.permanent:
                    self._redis.set(keys.sign_in_refused(self._fingerprint),
                                    f"{error}\n{error.setting or ''}",
                                    ex=defaults.SIGN_IN_REFUSED_PAUSE)
                raise
            self._store(ticket)
            return True
        finally:
            lock.release()

    def _count_attempt(self) -> None:
        key = keys.sign_in_attempts(self._fingerprint)
        with self._redis.pipeline() as pipe:
            # SET NX EX opens the minute's window (EXPIRE NX needs Redis 7; this works on 6).
            _, count, ttl = pipe.set(key, 0, ex=60, nx=True).incr(key).ttl(key).execute()
        if count > defaults.SIGN_INS_PER_MINUTE:
            raise SignInError(f"more than {defaults.SIGN_INS_PER_MINUTE} sign-ins to SuperOffice "
                              f"in a minute; waiting before the next", retry_after=max(ttl, 1))

    def _store(self, ticket: Ticket) -> None:
        lifetime = defaults.SYSTEM_USER_TICKET_LIFETIME - defaults.SYSTEM_USER_TICKET_MARGIN
        self._redis.set(keys.system_user_ticket(self._fingerprint),
                        json.dumps({"ticket": ticket.value, "api_url": ticket.api_url}),
                        ex=lifetime)
        self._ticket, self._expires = ticket, self._clock() + lifetime

    def _load_shared(self) -> bool:
        key = keys.system_user_ticket(self._fingerprint)
        with self._redis.pipeline() as pipe:
            raw, ttl = pipe.get(key).ttl(key).execute()
        if raw is None or ttl <= 0:
            return False
        stored = json.loads(raw)
        self._ticket = Ticket(value=stored["ticket"], api_url=stored.get("api_url"))
        self._expires = self._clock() + ttl
        return True

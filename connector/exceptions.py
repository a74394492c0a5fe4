"""Every error the connector raises on purpose, in one place.

Names say what went wrong. Errors that a job can meet carry ``permanent``: a permanent
error fails the job at once, anything else is retried with backoff (see workers/retry.py).
"""

from dataclasses import dataclass


class ConnectorError(Exception):
    """Base class of the connector's own errors."""

    permanent = False


class SettingsError(ConnectorError):
    """Environment variables are missing or invalid; the message names each, a line each.
    ``variable`` and ``problem`` are the first one's; ``problems`` lists them all."""

    def __init__(self, variable: str, problem: str):
        self.variable = variable
        self.problem = problem
        self.problems: tuple["SettingsError", ...] = (self,)
        super().__init__(f"{variable}: {problem}")

    @classmethod
    def of(cls, problems: list["SettingsError"]) -> "SettingsError":
        """One error that names every problem (the first as ``variable`` and ``problem``)."""
        if len(problems) == 1:
            return problems[0]
        error = cls(problems[0].variable, problems[0].problem)
        error.problems = tuple(problems)
        error.args = ("\n".join(str(problem) for problem in problems),)
        return error


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a purposes file, with where it is."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class ConfigError(ConnectorError):
    """The purposes file is invalid; ``problems`` lists every error with file and line."""

    permanent = True

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SignatureError(ConnectorError):
    """A webhook's signature header is missing or matches none of the secrets."""


class CRMError(ConnectorError):
    """A call to the CRM failed.

    Attributes:
        status: the HTTP status the CRM answered, or None when it did not answer.
        permanent: True when retrying cannot help (404, 400, 401, 403 ...).
        retry_after: seconds the CRM asked us to wait (429/503 Retry-After), or None.
        setting: the setting to fix when a setting is at fault (the message names it too).
    """

    def __init__(self, message: str, *, status: int | None = None, permanent: bool = False,
                 retry_after: float | None = None, setting: str | None = None):
        super().__init__(message)
        self.status = status
        self.permanent = permanent
        self.retry_after = retry_after
        self.setting = setting


class PersonNotFoundError(CRMError):
    """The CRM has no person with this id (deleted, or never existed)."""

    def __init__(self, person_id: int):
        super().__init__(f"CRM answered 404: person {person_id} no longer exists",
                         status=404, permanent=True)
        self.person_id = person_id


class UnusableAddressError(ConnectorError):
    """The person's email address in the CRM cannot be used (several addresses, a line break,
    not an address): no mail goes out, and the job fails for support to see. The message never
    quotes the address."""

    permanent = True


class SignInError(CRMError):
    """Signing in to SuperOffice as the system user failed. ``setting`` names what to fix when
    the sign-in was refused (permanent); while SuperOffice's login cannot be reached the error
    is transient and jobs wait."""


class TenantUnavailableError(CRMError):
    """The tenant's state is not Running (upgrade, maintenance, suspended …): jobs wait, unless
    the tenant is gone for good (``permanent``)."""

    def __init__(self, message: str, *, state: str, permanent: bool = False,
                 retry_after: float | None = None, setting: str | None = None):
        super().__init__(message, status=None, permanent=permanent, retry_after=retry_after,
                         setting=setting)
        self.state = state


class PersonBusyError(ConnectorError):
    """Another job of the same person held their lock too long; this one is retried."""

    retry_after = 5.0

    def __init__(self, person_id: int):
        super().__init__(f"another job of person {person_id} is still running; trying again "
                         f"after it")
        self.person_id = person_id


class MailError(ConnectorError):
    """A mail could not be delivered. ``permanent`` when the server refused it for good (5xx)."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class TokenError(ConnectorError):
    """A personal link's token is tampered with, malformed or expired.

    An expired token was signed by us, so ``person_id`` is known (to offer a fresh link);
    for a tampered one it is None.
    """

    def __init__(self, message: str, *, expired: bool = False, person_id: int | None = None):
        super().__init__(message)
        self.expired = expired
        self.person_id = person_id


class JobNotFoundError(ConnectorError):
    """No job has this id (never existed, purged, or expired)."""

    def __init__(self, job_id: str):
        super().__init__(f"no job with id {job_id!r} (purged, expired or mistyped?)")
        self.job_id = job_id


class JobNotFailedError(ConnectorError):
    """The job exists but is not in a failed registry, so it cannot be retried."""

    def __init__(self, job_id: str, status: str):
        super().__init__(f"job {job_id} is {status}, not failed: only failed jobs can be retried")
        self.job_id = job_id
        self.status = status


class ReconciliationRunningError(ConnectorError):
    """Another reconciliation pass holds the lock; try again when it has finished."""


class SchemaBehindError(ConnectorError):
    """The evidence database's schema is not the one this code needs."""

    permanent = True

    def __init__(self, where: str, current: str | None, head: str):
        self.current, self.head = current, head
        state = "has no schema yet" if current is None else f"is at revision {current}"
        super().__init__(f"the evidence database ({where}) {state}, this code needs {head}: "
                         f"run `consent-connector db upgrade` (the Procfile's release step "
                         f"does) and start again")

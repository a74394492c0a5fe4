"""Settings from environment variables (12-factor). What the business decides lives in YAML
(see connector.config); where things are and the secrets live here.

Every variable is documented in README.md. ``Settings.from_env`` raises SettingsError naming
every variable that is missing or invalid, so a process refuses to start with a clear
message instead of failing on the first webhook. A command asks only for what it uses
(``uses``): reading the CRM needs no mail settings.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit

from connector import defaults
from connector.exceptions import SettingsError


ENVIRONMENTS = ("sod", "stage", "online")
"""SuperOffice Online's environments: development, staging and production
(docs/en/apps/getting-started/app-envir.md); each has its own login and state API."""


@dataclass(frozen=True)
class SystemUser:
    """How to sign in to SuperOffice Online as the app's system user (docs/en/api/
    authentication/online/auth-application/): the tenant, the app's client secret, the system
    user token an administrator's consent gave, and the app's private key."""

    context_identifier: str
    client_secret: str
    system_user_token: str
    private_key_file: Path
    login_url: str
    token_certificate_file: Path | None = None

    def __repr__(self) -> str:  # never show the secrets
        return f"SystemUser(context_identifier={self.context_identifier!r}, login_url={self.login_url!r})"

    @property
    def state_url(self) -> str:
        """The tenant's state API (docs/en/apps/tenant-status/check-status.md)."""
        return f"{self.login_url}/api/state/{self.context_identifier}"


@dataclass(frozen=True)
class Settings:
    """The connector's typed settings. Secrets are kept out of ``repr``.

    The CRM is reached one of two ways: ``system_user`` (SuperOffice Online: the tenant's API
    address is discovered, ``superoffice_api_url`` only overrides it), or a fixed
    ``superoffice_api_url`` with an access token or ticket (on-site installations).
    """

    superoffice_api_url: str | None
    webhook_secrets: tuple[str, ...] = ()
    secret_keys: tuple[str, ...] = ()
    public_base_url: str = ""
    mail_from: str = ""
    system_user: SystemUser | None = None
    superoffice_access_token: str | None = None
    superoffice_ticket: str | None = None
    superoffice_app_token: str | None = None
    associate_id: int | None = None
    redis_url: str | None = None
    smtp_url: str | None = None
    consent_config: Path = Path("config/purposes.yaml")
    """CONSENT_CONFIG; by default ./config/purposes.yaml, else the one the package ships."""
    data_dir: Path = Path("var")
    link_max_age_days: int = defaults.LINK_MAX_AGE_DAYS
    retry_intervals: tuple[int, ...] = defaults.RETRY_INTERVALS
    trusted_proxy_count: int = 0
    admin_token: str | None = None
    reconcile_interval: int = defaults.RECONCILE_INTERVAL
    webhook_max_age: int = defaults.WEBHOOK_MAX_AGE
    worker_maintenance_interval: int = defaults.WORKER_MAINTENANCE_INTERVAL
    database_url: str | None = None
    ledger_erase_after_days: int = defaults.LEDGER_ERASE_AFTER_DAYS
    crm_max_requests_per_second: int = defaults.CRM_MAX_REQUESTS_PER_SECOND

    def __repr__(self) -> str:
        return f"Settings(api_url={self.superoffice_api_url!r}, data_dir={str(self.data_dir)!r})"

    @property
    def outbox_dir(self) -> Path:
        """Where mails are written as .eml files when SMTP_URL is unset."""
        return self.data_dir / "outbox"

    @property
    def database(self) -> str:
        """The evidence database's SQLAlchemy URL: DATABASE_URL, or the embedded SQLite file
        ``consent.db`` in DATA_DIR."""
        return self.database_url or embedded_database_url(self.data_dir)

    @property
    def database_embedded(self) -> bool:
        """True when no DATABASE_URL is set: the processes create and upgrade the embedded
        SQLite file themselves, as they start the embedded Redis."""
        return self.database_url is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str],
                 uses: frozenset[str] | None = None) -> "Settings":
        """Read and validate the settings from ``environ`` (normally ``os.environ``).

        Args:
            uses: what the process does besides reading the CRM, Redis and the evidence
                database: WEBHOOKS (SUPEROFFICE_WEBHOOK_SECRET), LINKS (SECRET_KEY,
                PUBLIC_BASE_URL), MAIL (MAIL_FROM); those of the others may be unset.

        Raises:
            SettingsError: naming every variable that is missing or invalid, at once.
        """
        env = _Env(environ)
        uses = EVERYTHING if uses is None else uses
        api_url, system_user, access_token, ticket = env.recorded(
            lambda: cls._crm(env), (None, None, None, None))
        settings = cls._settings(env, uses, api_url, system_user, access_token, ticket)
        if env.problems:
            raise SettingsError.of(env.problems)
        return settings

    @classmethod
    def _crm(cls, env: "_Env") -> tuple:
        """How the CRM is reached: (api_url, system_user, access_token, ticket).

        Raises:
            SettingsError: the CRM's settings do not add up.
        """
        access_token = env.optional("SUPEROFFICE_ACCESS_TOKEN")
        ticket = env.optional("SUPEROFFICE_TICKET")
        system_user = _system_user(env)
        if system_user is not None:
            fixed = "SUPEROFFICE_ACCESS_TOKEN" if access_token else "SUPEROFFICE_TICKET"
            if access_token or ticket:
                raise SettingsError(fixed, "set either the system user settings "
                                    "(SUPEROFFICE_SYSTEM_USER_TOKEN …) or a fixed "
                                    "SUPEROFFICE_ACCESS_TOKEN/SUPEROFFICE_TICKET, not both")
            api_url = env.optional("SUPEROFFICE_API_URL") and env.api_url("SUPEROFFICE_API_URL")
        else:
            if not access_token and not ticket:
                if env.optional("SUPEROFFICE_API_URL"):
                    raise SettingsError("SUPEROFFICE_ACCESS_TOKEN",
                                        "required (or SUPEROFFICE_TICKET): the CRM needs "
                                        "credentials")
                raise SettingsError("SUPEROFFICE_SYSTEM_USER_TOKEN",
                                    "required with SUPEROFFICE_CONTEXT_IDENTIFIER, "
                                    "SUPEROFFICE_CLIENT_SECRET and SUPEROFFICE_PRIVATE_KEY_FILE to "
                                    "sign in to SuperOffice Online (on-site: SUPEROFFICE_API_URL "
                                    "with SUPEROFFICE_ACCESS_TOKEN or SUPEROFFICE_TICKET)")
            if access_token and ticket:
                raise SettingsError("SUPEROFFICE_TICKET", "set either SUPEROFFICE_ACCESS_TOKEN or "
                                    "SUPEROFFICE_TICKET, not both")
            api_url = env.api_url("SUPEROFFICE_API_URL")
        return api_url, system_user, access_token, ticket

    @classmethod
    def _settings(cls, env: "_Env", uses: frozenset[str], api_url: str | None,
                  system_user: "SystemUser | None", access_token: str | None,
                  ticket: str | None) -> "Settings":
        return cls(
            superoffice_api_url=api_url.rstrip("/") if api_url else None,
            system_user=system_user,
            superoffice_access_token=access_token,
            superoffice_ticket=ticket,
            superoffice_app_token=env.optional("SUPEROFFICE_APP_TOKEN"),
            webhook_secrets=(env.csv("SUPEROFFICE_WEBHOOK_SECRET") if WEBHOOKS in uses
                             else env.optional_csv("SUPEROFFICE_WEBHOOK_SECRET")),
            associate_id=env.integer("SUPEROFFICE_ASSOCIATE_ID"),
            redis_url=env.optional("REDIS_URL"),
            smtp_url=env.smtp_url("SMTP_URL"),
            mail_from=(env.required("MAIL_FROM") if MAIL in uses
                       else env.optional("MAIL_FROM") or ""),
            public_base_url=((env.url("PUBLIC_BASE_URL") if LINKS in uses
                              else env.optional("PUBLIC_BASE_URL") and env.url("PUBLIC_BASE_URL"))
                             or "").rstrip("/"),
            secret_keys=(env.csv("SECRET_KEY", min_length=16) if LINKS in uses
                         else env.optional_csv("SECRET_KEY", min_length=16)),
            consent_config=consent_config_path(env.environ),
            data_dir=Path(env.optional("DATA_DIR") or "var"),
            link_max_age_days=env.integer("LINK_MAX_AGE_DAYS") or defaults.LINK_MAX_AGE_DAYS,
            retry_intervals=env.integers("RETRY_INTERVALS") or defaults.RETRY_INTERVALS,
            trusted_proxy_count=env.integer("TRUSTED_PROXY_COUNT", minimum=0, default=0),
            admin_token=env.secret("ADMIN_TOKEN", min_length=16),
            reconcile_interval=env.integer("RECONCILE_INTERVAL", minimum=0,
                                           default=defaults.RECONCILE_INTERVAL),
            webhook_max_age=env.integer("WEBHOOK_MAX_AGE", minimum=60,
                                        default=defaults.WEBHOOK_MAX_AGE),
            worker_maintenance_interval=env.integer(
                "WORKER_MAINTENANCE_INTERVAL", minimum=1,
                default=defaults.WORKER_MAINTENANCE_INTERVAL),
            database_url=env.database_url("DATABASE_URL"),
            ledger_erase_after_days=env.integer("LEDGER_ERASE_AFTER_DAYS", minimum=0,
                                                default=defaults.LEDGER_ERASE_AFTER_DAYS),
            crm_max_requests_per_second=env.integer(
                "CRM_MAX_REQUESTS_PER_SECOND", minimum=1,
                default=defaults.CRM_MAX_REQUESTS_PER_SECOND),
        )

WEBHOOKS, LINKS, MAIL = "webhooks", "links", "mail"
"""What a process does besides reading the CRM (Settings.from_env's ``uses``): receive
webhooks, make personal links, send mail."""

EVERYTHING = frozenset({WEBHOOKS, LINKS, MAIL})
"""The web and the worker do all of it."""

READING = frozenset()
"""A command that reads the CRM, Redis or the evidence database, or queues jobs."""


SHIPPED_PURPOSES = Path(__file__).with_name("purposes.yaml")
"""The purposes file the package ships (config/purposes.yaml in a checkout points at it)."""


def consent_config_path(environ: Mapping[str, str]) -> Path:
    """The purposes file: CONSENT_CONFIG, else ./config/purposes.yaml (a checkout, or one an
    admin put beside the processes), else the one the package ships (an installed copy run
    from any folder)."""
    given = (environ.get("CONSENT_CONFIG") or "").strip()
    if given:
        return Path(given)
    local = Path("config/purposes.yaml")
    return local if local.exists() else SHIPPED_PURPOSES


def database_url_from_env(environ: Mapping[str, str]) -> str:
    """The evidence database's URL from DATABASE_URL or DATA_DIR alone, for the commands that
    need nothing else (``db upgrade`` runs before the rest is set up).

    Raises:
        SettingsError: DATABASE_URL is invalid.
    """
    env = _Env(environ)
    url = env.database_url("DATABASE_URL")
    if env.problems:
        raise SettingsError.of(env.problems)
    return url or embedded_database_url(Path(env.optional("DATA_DIR") or "var"))


def erase_after_days_from_env(environ: Mapping[str, str]) -> int:
    """LEDGER_ERASE_AFTER_DAYS alone, for ``ledger erase``.

    Raises:
        SettingsError: it is not a whole number of days (0 or more).
    """
    env = _Env(environ)
    days = env.integer("LEDGER_ERASE_AFTER_DAYS", minimum=0,
                       default=defaults.LEDGER_ERASE_AFTER_DAYS)
    if env.problems:
        raise SettingsError.of(env.problems)
    return days


def embedded_database_url(data_dir: Path) -> str:
    """The embedded SQLite file in DATA_DIR."""
    return f"sqlite:///{(data_dir / 'consent.db').resolve()}"


_SYSTEM_USER_VARIABLES = ("SUPEROFFICE_CONTEXT_IDENTIFIER", "SUPEROFFICE_CLIENT_SECRET",
                          "SUPEROFFICE_SYSTEM_USER_TOKEN", "SUPEROFFICE_PRIVATE_KEY_FILE")


def _system_user(env: "_Env") -> SystemUser | None:
    """The system user settings, when any of them is set (then all four must be)."""
    if not any(env.optional(name) for name in _SYSTEM_USER_VARIABLES):
        return None
    context_identifier = env.required("SUPEROFFICE_CONTEXT_IDENTIFIER")
    if not _CONTEXT_IDENTIFIER.match(context_identifier):
        raise SettingsError("SUPEROFFICE_CONTEXT_IDENTIFIER",
                            f"expected the tenant's id like Cust12345, got {context_identifier!r}")
    environment = (env.optional("SUPEROFFICE_ENVIRONMENT") or "online").lower()
    if environment not in ENVIRONMENTS:
        raise SettingsError("SUPEROFFICE_ENVIRONMENT",
                            f"must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
    login_url = (env.optional("SUPEROFFICE_LOGIN_URL") and env.url("SUPEROFFICE_LOGIN_URL")
                 or f"https://{environment}.superoffice.com")
    return SystemUser(
        context_identifier=context_identifier,
        client_secret=env.required("SUPEROFFICE_CLIENT_SECRET"),
        system_user_token=env.required("SUPEROFFICE_SYSTEM_USER_TOKEN"),
        private_key_file=env.existing_file("SUPEROFFICE_PRIVATE_KEY_FILE"),
        login_url=login_url.rstrip("/"),
        token_certificate_file=(env.existing_file("SUPEROFFICE_TOKEN_CERTIFICATE_FILE")
                                if env.optional("SUPEROFFICE_TOKEN_CERTIFICATE_FILE") else None),
    )


_CONTEXT_IDENTIFIER = re.compile(r"^[A-Za-z]+\d+$")

_SCHEMES = {  # scheme → (default port, security)
    "smtp": (25, "plain"),
    "smtp+starttls": (587, "starttls"),
    "smtps": (465, "tls"),
}


@dataclass(frozen=True)
class SMTPServer:
    """Where and how to reach the mail server; parsed from SMTP_URL."""

    host: str
    port: int
    security: str  # "plain", "starttls" or "tls"
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never show the password
        return (f"SMTPServer(host={self.host!r}, port={self.port}, security={self.security!r}, "
                f"username={'***' if self.username else None})")

    @classmethod
    def parse(cls, url: str) -> "SMTPServer":
        """Parse ``smtp://``, ``smtp+starttls://`` or ``smtps://[user:password@]host[:port]``.

        Raises:
            ValueError: naming SMTP_URL (without echoing the password).
        """
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(f"SMTP_URL: scheme must be one of {', '.join(_SCHEMES)}, "
                             f"not {scheme or 'nothing'!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("SMTP_URL: the port is not a number between 0 and 65535") from None
        if not parts.hostname:
            raise ValueError("SMTP_URL: no host, expected e.g. "
                             "smtp+starttls://mail.example.com:587")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError("SMTP_URL: expected no path or query after host:port")
        default_port, security = _SCHEMES[scheme]
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port or default_port, security, username, password)


def _reader(method):
    """Make an _Env reader record its SettingsError in ``problems`` and return None, so that
    every problem is found in one reading; readers it calls itself raise to it."""
    @wraps(method)
    def read(self: "_Env", *args, **kwargs):
        return self.recorded(lambda: method(self, *args, **kwargs), None)
    return read


class _Env:
    """Reads one kind of value from the environment; a value that is missing or invalid is
    recorded in ``problems`` (a SettingsError naming it) and read as None."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.problems: list[SettingsError] = []
        self._depth = 0

    def recorded(self, read, default):
        """``read()``, or ``default`` with its SettingsError recorded (nested readers raise)."""
        if self._depth:
            return read()
        self._depth += 1
        try:
            return read()
        except SettingsError as problem:
            self.problems.append(problem)
            return default
        finally:
            self._depth -= 1

    def optional(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or None

    @_reader
    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(name, "required but not set")
        return value

    @_reader
    def url(self, name: str) -> str:
        value = self.required(name)
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SettingsError(name, f"must be an http(s) URL, got {value!r}")
        return value

    @_reader
    def api_url(self, name: str) -> str:
        """The address of SuperOffice's REST API, which ends in ``/api/v1``
        (docs/en/api/reference/restful/rest/index.md): without it every call answers 404,
        which reads as "no such person"."""
        value = self.url(name)
        path = urlparse(value).path.rstrip("/")
        if not path.endswith("/api/v1"):
            suggestion = value.rstrip("/") + ("/v1" if path.endswith("/api") else "/api/v1")
            raise SettingsError(name, f"must be the REST API's address, ending in /api/v1, "
                                      f"e.g. https://sod.superoffice.com/Cust12345/api/v1; got "
                                      f"{value!r} (did you mean {suggestion!r}?)")
        return value

    @_reader
    def database_url(self, name: str) -> str | None:
        """A SQLAlchemy URL of SQLite or PostgreSQL. ``postgres://`` and ``postgresql://`` (as
        hosting platforms give them) mean psycopg 3, the driver the connector ships with."""
        value = self.optional(name)
        if value is None:
            return None
        scheme, separator, rest = value.partition("://")
        if scheme in ("postgres", "postgresql"):
            scheme = "postgresql+psycopg"
        if not separator or scheme not in ("sqlite", "postgresql+psycopg"):
            raise SettingsError(name, f"must be postgresql://user:password@host/database or "
                                      f"sqlite:////absolute/path.db, got a {scheme or 'bad'!r} URL")
        return f"{scheme}://{rest}"

    @_reader
    def existing_file(self, name: str) -> Path:
        path = Path(self.required(name)).expanduser()
        if not path.is_file():
            raise SettingsError(name, f"no such file: {str(path)!r}")
        return path

    @_reader
    def csv(self, name: str, min_length: int = 1) -> tuple[str, ...]:
        values = tuple(v.strip() for v in self.required(name).split(",") if v.strip())
        if not values:
            raise SettingsError(name, "required but empty")
        if any(len(v) < min_length for v in values):
            raise SettingsError(name, f"each value must be at least {min_length} characters long")
        return values

    @_reader
    def optional_csv(self, name: str, min_length: int = 1) -> tuple[str, ...]:
        """Like ``csv``, but unset is no values."""
        return self.csv(name, min_length) if self.optional(name) else ()

    @_reader
    def secret(self, name: str, min_length: int) -> str | None:
        value = self.optional(name)
        if value is not None and len(value) < min_length:
            raise SettingsError(name, f"must be at least {min_length} characters long")
        return value

    @_reader
    def smtp_url(self, name: str) -> str | None:
        value = self.optional(name)
        if value is not None:
            try:
                SMTPServer.parse(value)
            except ValueError as error:
                raise SettingsError(name, str(error).removeprefix(f"{name}: ")) from None
        return value

    @_reader
    def integer(self, name: str, minimum: int = 1, default: int | None = None) -> int | None:
        value = self.optional(name)
        if value is None:
            return default
        if not _is_whole_number(value) or int(value) < minimum:
            raise SettingsError(name, f"must be a whole number of at least {minimum}, got {value!r}")
        return int(value)

    @_reader
    def integers(self, name: str) -> tuple[int, ...] | None:
        value = self.optional(name)
        if value is None:
            return None
        parts = [p.strip() for p in value.split(",")]
        if not all(_is_whole_number(p) for p in parts):
            raise SettingsError(name, f"must be comma-separated seconds like '10,60,300', got {value!r}")
        return tuple(int(p) for p in parts)


def _is_whole_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() would also pass '²', which int() cannot read."""
    return text.isascii() and text.isdigit()

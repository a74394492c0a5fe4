"""What every process works with: the settings, the purposes config in force, Redis, the CRM
client and the request budget it shares, the intake of events, the evidence database and its
ledger, the mailer and the link signers, built once per process by
``build_services`` (the web's app factory, the worker command and the other commands).

No Flask and no RQ here: the web reaches these through ``connector.web.context.get_services``,
a job through the worker that built them.
"""

from dataclasses import dataclass

import redis

from connector import defaults
from connector.config import LiveConfig
from connector.consent import ConsentConfig
from connector.crm.budget import CRMBudget
from connector.crm.types import CRMClient
from connector.evidence.database import Database
from connector.evidence.ledger import Ledger
from connector.intake import Intake
from connector.links import LinkSigner, UnsubscribeSigner
from connector.mail.delivery import Mailer
from connector.metrics import crm_observer
from connector.redis_connection import connect
from connector.settings import Settings
from connector.superoffice.client import client_from_settings


@dataclass(frozen=True)
class Services:
    """The services of one process."""

    settings: Settings
    live_config: LiveConfig
    redis: redis.Redis
    crm: CRMClient
    crm_budget: CRMBudget
    intake: Intake
    mailer: Mailer
    database: Database
    ledger: Ledger
    links: LinkSigner
    unsubscribe_links: UnsubscribeSigner

    @property
    def config(self) -> ConsentConfig:
        """The purposes config in force (an edited file is picked up without a restart)."""
        return self.live_config.current()


def build_services(settings: Settings, *, connection: redis.Redis | None = None,
                   crm: CRMClient | None = None,
                   redis_timeout: float | None = defaults.REDIS_SOCKET_TIMEOUT,
                   config_required: bool = True) -> Services:
    """Build every service from the settings (the CRM client reads the system user's key file).

    Args:
        settings: the validated settings.
        connection: a Redis client; connected from the settings when None.
        crm: a CRM client; SuperOffice from the settings when None.
        redis_timeout: seconds to wait for Redis (the web answers 503 rather than wait);
            None for workers and commands, which wait with redis-py's retries.
        config_required: False to build them with an invalid purposes file too (``status``
            reports it; ``live_config.refused`` says why).

    Raises:
        ConfigError: the purposes file is invalid (unless ``config_required`` is False).
        SettingsError: the system user's key or certificate file cannot be used.
        SchemaBehindError: DATABASE_URL's schema is not this code's (the embedded SQLite
            file is brought up to date instead).
        sqlalchemy.exc.OperationalError: the database cannot be reached.
        ValueError: SMTP_URL is malformed (the message names it).
    """
    connection = connection or connect(settings, socket_timeout=redis_timeout)
    budget = CRMBudget(connection, settings.crm_max_requests_per_second)
    database = Database(settings.database)
    if settings.database_embedded:
        database.upgrade()
    else:
        database.require_current_schema()
    return Services(
        settings=settings,
        live_config=LiveConfig(settings.consent_config, required=config_required),
        redis=connection,
        crm=crm or client_from_settings(settings, connection, budget,
                                        observe=crm_observer(connection)),
        crm_budget=budget,
        intake=Intake(connection),
        mailer=Mailer.from_url(settings.smtp_url, settings.outbox_dir),
        database=database,
        ledger=Ledger(database),
        links=LinkSigner(settings.secret_keys, settings.link_max_age_days),
        unsubscribe_links=UnsubscribeSigner(settings.secret_keys),
    )

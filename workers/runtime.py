"""What jobs work with: settings, config, Redis, the CRM client, the mailer, the ledger and
the link signer, built once per worker process (before RQ forks a work horse per job)."""

import os
from dataclasses import dataclass

import redis

from connector.config import LiveConfig
from connector.consent import ConsentConfig
from connector.crm import CRMClient
from connector.crm.superoffice import client_from_settings
from connector.ledger import Ledger
from connector.metrics import crm_observer
from connector.redis_connection import connect
from connector.settings import Settings
from connector.subscriptions.tokens import LinkSigner
from workers.mailer import Mailer

_current: "Runtime | None" = None


@dataclass(frozen=True)
class Runtime:
    """The services a job uses."""

    settings: Settings
    live_config: LiveConfig
    redis: redis.Redis
    crm: CRMClient
    mailer: Mailer
    ledger: Ledger
    links: LinkSigner

    @property
    def config(self) -> ConsentConfig:
        """The purposes config in force (an edited file is picked up without a restart)."""
        return self.live_config.current()


def build_runtime(settings: Settings) -> Runtime:
    """Build every service from the settings; raises ConfigError on an invalid purposes file."""
    connection = connect(settings, socket_timeout=None)
    return Runtime(
        settings=settings,
        live_config=LiveConfig(settings.consent_config),
        redis=connection,
        crm=client_from_settings(settings, observe=crm_observer(connection)),
        mailer=Mailer.from_url(settings.smtp_url, settings.outbox_dir),
        ledger=Ledger(connection),
        links=LinkSigner(settings.secret_keys, settings.link_max_age_days),
    )


def install(runtime: Runtime) -> None:
    """Make ``runtime`` the one ``current()`` returns (the worker command calls this)."""
    global _current
    _current = runtime


def current() -> Runtime:
    """Return the installed runtime, building it from the environment on first use."""
    if _current is None:
        install(build_runtime(Settings.from_env(os.environ)))
    return _current

"""Where the sandbox tenant lives and whether it runs: SuperOffice's state API facts.

docs/en/apps/tenant-status/status-page.md (SuperOfficeDocs/superoffice-docs): the tenant's
Endpoint "will change routinely to balance the load" (``https://sod2.superoffice.com/Cust00000``
may shift to ``sod3``), and its State says whether the APIs are available — only Running and
OnlineMaintenance count as running.

The sandbox serves the tenant at ``<root>/<tenant>`` first; a move puts it at
``<root>/<farm>/<tenant>``.
"""

from __future__ import annotations

import itertools
import re
import threading
from datetime import datetime, timedelta, timezone

#: Tenant states of the state API (status-page.md, "State").
STATES = ("Unknown", "Provisioning", "Running", "Deleted", "Suspended", "OnlineMaintenance",
          "OfflineMaintenance", "ProvisioningFailed", "Deleting", "DeleteFailed", "MigrationPending")
#: States in which the tenant's APIs answer (status-page.md, "IsRunning").
RUNNING_STATES = ("Running", "OnlineMaintenance")
_FARM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


def valid_until_text(moment: datetime) -> str:
    """Format a UTC time as the state API does: seven fractional digits and Z
    (``2020-10-05T09:52:01.9342965Z``)."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


class TenantPlace:
    """The tenant's current farm (None: the initial endpoint) and State.

    Args:
        tenant: the context identifier.
    """

    def __init__(self, tenant: str):
        self.tenant = tenant
        self.lock = threading.Lock()
        self._farm_numbers = itertools.count(2)
        self.reset()

    def reset(self) -> None:
        """Back to the initial endpoint, State Running."""
        with self.lock:
            self.farm: str | None = None
            self.state = "Running"

    @property
    def is_running(self) -> bool:
        """True in the states whose APIs are available."""
        return self.state in RUNNING_STATES

    def endpoint(self, root_url: str) -> str:
        """The tenant's endpoint under ``root_url`` (``scheme://host:port``)."""
        farm = self.farm
        return f"{root_url.rstrip('/')}{'/' + farm if farm else ''}/{self.tenant}"

    def set_state(self, state: str) -> None:
        """Set the tenant's State.

        Raises:
            ValueError: ``state`` is not a state name of the state API.
        """
        if state not in STATES:
            raise ValueError(f"Unknown tenant State '{state}'; one of {', '.join(STATES)}")
        with self.lock:
            self.state = state

    def move(self, farm: str | None = None) -> str:
        """Move the tenant to ``farm`` (default: the next ``sod<N>``); return the farm.

        Raises:
            ValueError: ``farm`` is not a plain path segment, or is the tenant's own name.
        """
        if farm is None:
            farm = self._next_farm()
        if not isinstance(farm, str) or not _FARM.match(farm) or farm == self.tenant:
            raise ValueError(f"farm must be a short name like 'sod7', got {farm!r}")
        with self.lock:
            self.farm = farm
        return farm

    def _next_farm(self) -> str:
        farm = f"sod{next(self._farm_numbers)}"
        while farm == self.farm:
            farm = f"sod{next(self._farm_numbers)}"
        return farm

    def valid_until(self, seconds: float) -> str:
        """The state API's ValidUntil: ``seconds`` from now."""
        return valid_until_text(datetime.now(timezone.utc) + timedelta(seconds=seconds))

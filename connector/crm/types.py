"""What the connector asks of a CRM, and the values it gets back. The rest of the connector
sees only these, never a CRM's JSON; connector/superoffice/ is the one implementation.

Keys (purpose, legal basis, source) are the CRM's own list keys (``STORE``, ``61F``, ``USER``).
Dates are aware UTC datetimes, or None where the CRM has them unset.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

COMMENT_MAX_LENGTH = 255
"""Longest comment a consent row keeps (SuperOffice: consentperson.comment, 255 characters)."""


@dataclass(frozen=True)
class ConsentRecord:
    """One consent row as the CRM holds it (SuperOffice's ConsentInfo), keys as the CRM's."""

    purpose: str
    legal_basis: str
    source: str
    comment: str = ""
    registered: datetime | None = None
    registered_by: int | None = None
    updated: datetime | None = None
    updated_by: int | None = None


@dataclass(frozen=True)
class ShipmentType:
    """One of the person's shipment types as the CRM holds it (PersonEntity.ShipmentTypes[]):
    ``selected`` is whether the person receives that kind of mailing."""

    id: int
    name: str
    selected: bool
    deleted: bool = False


@dataclass(frozen=True)
class Person:
    """A person as the connector needs them. ``language`` is an ISO 639-1 code or None."""

    id: int
    first_name: str
    last_name: str
    email: str | None
    language: str | None
    company_name: str | None
    created_by_associate_id: int | None
    consents: tuple[ConsentRecord, ...]
    shipment_types: tuple[ShipmentType, ...] = ()


@dataclass(frozen=True)
class PersonListing:
    """One row of the person list: the id and when the person was registered and last updated."""

    person_id: int
    registered: datetime | None
    updated: datetime | None

    @property
    def changed(self) -> datetime | None:
        """The later of ``registered`` and ``updated``: when the CRM last touched the person."""
        dates = [d for d in (self.registered, self.updated) if d is not None]
        return max(dates) if dates else None


@dataclass(frozen=True)
class WebhookInfo:
    """A webhook registered in the CRM, as the connector reports it (never its secret).
    ``state`` is SuperOffice's: ``Active``, ``Stopped`` or ``TooManyErrors``."""

    id: int
    name: str
    events: tuple[str, ...]
    state: str
    target_url: str


@dataclass(frozen=True)
class CRMListItem:
    """One row of one of the CRM's consent lists (purposes, legal bases, sources)."""

    key: str
    name: str
    active: bool = True


@dataclass(frozen=True)
class Principal:
    """Who the connector is in the CRM: the associate its writes are made as."""

    associate_id: int
    context_identifier: str | None = None


@dataclass(frozen=True)
class TenantState:
    """Where the CRM tenant is and whether its API is up (SuperOffice Online's state API)."""

    context_identifier: str
    state: str
    is_running: bool
    api_url: str | None
    """The REST base the connector calls."""
    valid_until: str
    """ISO UTC time until which this holds."""


class CRMClient(Protocol):
    """What the connector asks of a CRM. Every method raises ``connector.exceptions.CRMError``
    (``PersonNotFoundError`` for a person that does not exist); ``permanent`` says whether a
    retry can help, ``retry_after`` how long the CRM asked us to wait."""

    def get_person(self, person_id: int) -> Person:
        """Read a person with their email, language, consent rows and shipment types."""

    def set_consent(self, person_id: int, purpose: str, source: str, legal_basis: str,
                    comment: str) -> None:
        """Create or update the person's consent row for ``purpose`` (CRM keys)."""

    def set_shipment_types(self, person_id: int, selection: Mapping[int, bool],
                           current: tuple[ShipmentType, ...]) -> None:
        """Change only the selection of the given shipment types (id → selected), checked
        against ``current`` (as read): the CRM refuses the change if it moved meanwhile."""

    def list_persons(self, changed_since: datetime | None,
                     page_size: int = ...) -> Iterator[PersonListing]:
        """Yield every person registered or updated after ``changed_since`` (all when None),
        each once, page by page."""

    def list_webhooks(self) -> list[WebhookInfo]:
        """The webhooks registered in the CRM, with their state."""

    def consent_lists(self) -> dict[str, list[CRMListItem]]:
        """The CRM's purposes, legal bases and sources, by kind (``purposes``,
        ``legal_bases``, ``sources``)."""

    def current_principal(self) -> Principal:
        """Sign in if needed and ask the CRM who the connector is: the check that the
        credentials and the API address work."""

    def tenant_state(self) -> TenantState | None:
        """The tenant's state as last looked up (looking it up if nobody has), or None when
        the API address is fixed by configuration."""

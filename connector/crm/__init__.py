"""CRM clients behind one small protocol. The rest of the connector sees only ``Person``,
``ConsentRecord`` and the ``CRMClient`` methods, never a CRM's JSON."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from connector.consent import ConsentRecord, ShipmentType


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


class CRMClient(Protocol):
    """What the connector asks of a CRM. Errors are ``connector.exceptions.CRMError``."""

    def get_person(self, person_id: int) -> Person:
        """Read a person with their email, language and consent rows."""

    def set_consent(self, person_id: int, purpose: str, source: str, legal_basis: str,
                    comment: str) -> None:
        """Create or update the person's consent row for ``purpose`` (CRM keys)."""

    def set_shipment_types(self, person_id: int, selection: Mapping[int, bool],
                           current: tuple[ShipmentType, ...]) -> None:
        """Change only the selection of the given shipment types (id → selected), checked
        against ``current`` (as read): the CRM refuses the change if it moved meanwhile."""

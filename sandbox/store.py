"""In-memory state of the sandbox CRM: persons, consents, lists, webhooks, logs.

Everything lives in one :class:`Store` guarded by one re-entrant lock, so the
threaded HTTP server and the webhook delivery threads can share it safely.
Records are plain dataclasses; the JSON shapes SuperOffice uses are built in
``sandbox.server`` from them.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: Longest comment the consentperson table keeps (docs/database/tables/consentperson.md).
COMMENT_MAX = 255

#: The legal base key that marks a consent as withdrawn (PersonEntity.Consents docs).
WITHDRAWN = "WITHDRAWN"


def now_text() -> str:
    """Return the current UTC time the way SuperOffice writes dates: ``2026-11-29T10:15:00``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class ListItem:
    """One row of a consent list (purpose, legal base or source)."""

    id: int
    key: str
    name: str
    rank: int
    tooltip: str = ""


# SuperOffice's default list rows. Admins can edit these in a real tenant;
# clients must read them from the tenant, never hard-code them.
DEFAULT_PURPOSES = (
    ListItem(1, "STORE", "Sales and service", 1, "Store and process personal data for sales and service"),
    ListItem(2, "EMARKETING", "E-marketing", 2, "Send newsletters and marketing by e-mail"),
)
DEFAULT_LEGAL_BASES = (
    ListItem(1, "61A", "Consent", 1),
    ListItem(2, "61B", "Contract", 2),
    ListItem(3, "61C", "Legal obligation", 3),
    ListItem(4, "61D", "Vital interests", 4),
    ListItem(5, "61E", "Public task", 5),
    ListItem(6, "61F", "Legitimate interest", 6),
    ListItem(7, WITHDRAWN, "Withdrawn", 7),
)
DEFAULT_SOURCES = (
    ListItem(1, "USER", "Registered by user", 1),
    ListItem(2, "WEBFORM", "Web form", 2),
    ListItem(3, "API", "API", 3),
    ListItem(4, "IMPORT", "Import", 4),
)
CUSTOMER_LANGUAGES = (
    ListItem(1, "en", "English", 1),
    ListItem(2, "nb", "Norwegian", 2),
    ListItem(3, "sv", "Swedish", 3),
    ListItem(4, "da", "Danish", 4),
    ListItem(5, "de", "German", 5),
    ListItem(6, "nl", "Dutch", 6),
)

#: SuperOffice's shipment types (kinds of mailing) every new person can subscribe to, as
#: Settings and maintenance → Lists → Shipment types would hold them.
DEFAULT_SHIPMENT_TYPES = (
    ListItem(1, "NEWSLETTER", "Newsletter", 1, "Our monthly newsletter"),
    ListItem(2, "EVENTS", "Event invitations", 2, "Seminars, webinars and customer events"),
    ListItem(3, "PRODUCT_NEWS", "Product news", 3, "News about products and offers"),
)

#: Associate names the demo uses; others are called "Associate N".
DEFAULT_ASSOCIATES = {9: "consent-connector", 42: "Web form"}


@dataclass
class ConsentRow:
    """One consentperson row: unique per (person, purpose)."""

    consent_person_id: int
    person_id: int
    purpose: ListItem
    legal_base: ListItem
    source: ListItem
    comment: str
    registered: str
    registered_associate_id: int
    updated: str
    updated_associate_id: int
    updated_count: int = 0


@dataclass
class Person:
    """A person (contact person) with the fields the sandbox supports."""

    person_id: int
    firstname: str
    lastname: str
    emails: list[dict[str, str]]
    contact: dict[str, Any] | None
    customer_language: ListItem | None
    country: dict[str, Any] | None
    no_mailing: bool
    created: str
    created_by: int
    updated: str
    updated_by: int
    #: shipment type id → selected (PersonEntity.ShipmentTypes[].Selected)
    shipment_types: dict[int, bool] = field(default_factory=dict)


@dataclass
class Webhook:
    """A registered webhook and its delivery health."""

    webhook_id: int
    name: str
    events: list[str]
    target_url: str
    secret: str
    state: str
    type: str
    registered: str
    registered_associate_id: int
    updated: str
    updated_associate_id: int
    failed_attempts: int = 0


@dataclass
class Fault:
    """An injected failure: the next ``times`` matching API calls answer ``status``."""

    status: int | None
    times: int
    retry_after: int | None
    match: str
    method: str | None
    delay: float

    def matches(self, method: str, path: str) -> bool:
        """Tell whether a call with this method and path is hit by the fault."""
        if self.method and self.method.upper() != method.upper():
            return False
        return self.match.lower() in path.lower()


class UnknownKeyError(KeyError):
    """Raised by the store for an unknown list key; ``kind`` names the list."""

    def __init__(self, kind: str, key: str):
        super().__init__(key)
        self.kind = kind
        self.key = key


class Store:
    """Thread-safe in-memory CRM state.

    Args:
        associates: associate id → display name, used for CreatedBy/UpdatedBy.
    """

    def __init__(self, associates: dict[int, str] | None = None):
        self.lock = threading.RLock()
        self.associates = dict(DEFAULT_ASSOCIATES)
        self.associates.update(associates or {})
        self.purposes = {item.key: item for item in DEFAULT_PURPOSES}
        self.legal_bases = {item.key: item for item in DEFAULT_LEGAL_BASES}
        self.sources = {item.key: item for item in DEFAULT_SOURCES}
        self.shipment_types = {item.id: item for item in DEFAULT_SHIPMENT_TYPES}
        self.reset()

    def reset(self) -> None:
        """Forget persons, contacts, consents, webhooks, logs and faults."""
        with self.lock:
            self.persons: dict[int, Person] = {}
            self.contacts: dict[str, dict[str, Any]] = {}
            self.consents: dict[tuple[int, str], ConsentRow] = {}
            self.webhooks: dict[int, Webhook] = {}
            self.deliveries: list[dict[str, Any]] = []
            self.calls: list[dict[str, Any]] = []
            self.faults: list[Fault] = []
            self._person_ids = itertools.count(1)
            self._contact_ids = itertools.count(1)
            self._consent_ids = itertools.count(1)
            self._webhook_ids = itertools.count(1)

    # -- associates -----------------------------------------------------
    def associate_name(self, associate_id: int) -> str:
        """Return the display name of an associate."""
        return self.associates.get(associate_id, f"Associate {associate_id}")

    # -- persons --------------------------------------------------------
    def create_person(
        self,
        *,
        firstname: str,
        lastname: str,
        emails: list[str],
        contact_name: str | None,
        customer_language: ListItem | None,
        country: dict[str, Any] | None,
        no_mailing: bool,
        associate_id: int,
    ) -> Person:
        """Create a person (and its company, by name) and return it."""
        with self.lock:
            contact = None
            if contact_name:
                contact = self.contacts.get(contact_name.casefold())
                if contact is None:
                    contact = {"ContactId": next(self._contact_ids), "Name": contact_name}
                    self.contacts[contact_name.casefold()] = contact
            stamp = now_text()
            person = Person(
                person_id=next(self._person_ids),
                firstname=firstname,
                lastname=lastname,
                emails=[{"Value": e, "StrippedValue": e.strip(), "Description": ""} for e in emails],
                contact=dict(contact) if contact else None,
                customer_language=customer_language,
                country=country,
                no_mailing=no_mailing,
                created=stamp,
                created_by=associate_id,
                updated=stamp,
                updated_by=associate_id,
                shipment_types={type_id: False for type_id in self.shipment_types},
            )
            self.persons[person.person_id] = person
            return person

    def get_person(self, person_id: int) -> Person | None:
        """Return the person or None."""
        with self.lock:
            return self.persons.get(person_id)

    def delete_person(self, person_id: int) -> Person | None:
        """Delete the person and their consent rows for good; return them, or None."""
        with self.lock:
            person = self.persons.pop(person_id, None)
            for key in [key for key in self.consents if key[0] == person_id]:
                del self.consents[key]
            return person

    def list_persons(self) -> list[Person]:
        """Return all persons ordered by id."""
        with self.lock:
            return [self.persons[k] for k in sorted(self.persons)]

    # -- lists ----------------------------------------------------------
    def _item(self, table: dict[str, ListItem], kind: str, key: str) -> ListItem:
        item = table.get((key or "").upper())
        if item is None:
            raise UnknownKeyError(kind, key)
        return item

    def purpose(self, key: str) -> ListItem:
        """Return the purpose with this key; raise UnknownKeyError when unknown."""
        return self._item(self.purposes, "purpose", key)

    # -- consents -------------------------------------------------------
    def consents_of(self, person_id: int) -> list[ConsentRow]:
        """Return the person's consent rows in purpose rank order."""
        with self.lock:
            rows = [r for (pid, _), r in self.consents.items() if pid == person_id]
            return sorted(rows, key=lambda r: r.purpose.rank)

    def has_consent(self, person_id: int, purpose_key: str) -> bool:
        """True when the person has a non-withdrawn consent row for the purpose."""
        with self.lock:
            row = self.consents.get((person_id, purpose_key.upper()))
            return row is not None and row.legal_base.key != WITHDRAWN

    def set_consent(
        self,
        person_id: int,
        purpose_key: str,
        *,
        source_key: str,
        legal_base_key: str,
        comment: str,
        associate_id: int,
    ) -> ConsentRow:
        """Create or update the (person, purpose) row and return it.

        Raises:
            UnknownKeyError: purpose, source or legal base key is unknown.
        """
        with self.lock:
            purpose = self.purpose(purpose_key)
            source = self._item(self.sources, "source", source_key)
            legal_base = self._item(self.legal_bases, "legal base", legal_base_key)
            stamp = now_text()
            row = self.consents.get((person_id, purpose.key))
            if row is None:
                row = ConsentRow(
                    consent_person_id=next(self._consent_ids),
                    person_id=person_id,
                    purpose=purpose,
                    legal_base=legal_base,
                    source=source,
                    comment=comment,
                    registered=stamp,
                    registered_associate_id=associate_id,
                    updated=stamp,
                    updated_associate_id=associate_id,
                )
                self.consents[(person_id, purpose.key)] = row
            else:
                row.legal_base = legal_base
                row.source = source
                row.comment = comment
                row.updated = stamp
                row.updated_associate_id = associate_id
                row.updated_count += 1
            return row

    def remove_consent(self, person_id: int, purpose_key: str) -> bool:
        """Delete the (person, purpose) row; return whether there was one.

        Raises:
            UnknownKeyError: the purpose key is unknown.
        """
        with self.lock:
            purpose = self.purpose(purpose_key)
            return self.consents.pop((person_id, purpose.key), None) is not None

    # -- webhooks -------------------------------------------------------
    def add_webhook(self, *, name: str, events: list[str], target_url: str, secret: str,
                    state: str, type_: str, associate_id: int) -> Webhook:
        """Register a webhook and return it."""
        with self.lock:
            stamp = now_text()
            hook = Webhook(next(self._webhook_ids), name, list(events), target_url, secret,
                           state, type_, stamp, associate_id, stamp, associate_id)
            self.webhooks[hook.webhook_id] = hook
            return hook

    def webhooks_for(self, event: str) -> list[Webhook]:
        """Return the active webhooks subscribed to ``event``."""
        with self.lock:
            return [h for h in self.webhooks.values() if h.state == "Active" and event in h.events]

    # -- logs -----------------------------------------------------------
    def log_call(self, entry: dict[str, Any]) -> None:
        """Append one API call (method, path, query, status) to the call log."""
        with self.lock:
            self.calls.append(entry)

    def log_delivery(self, entry: dict[str, Any]) -> None:
        """Append one webhook delivery attempt to the delivery log."""
        with self.lock:
            self.deliveries.append(entry)

    # -- faults ---------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        """Queue an injected fault."""
        with self.lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self.lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """Return the first fault matching this call and use up one of its times."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
            return None

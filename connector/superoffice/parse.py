"""SuperOffice's JSON → the connector's CRM values (connector.crm.types).

Shapes: PersonEntity, ConsentInfo, the OData person list and Webhook, from
docs/en/api/reference/restful/rest/ in SuperOfficeDocs/superoffice-docs (see
docs/superoffice-notes.md). Every function raises a permanent ``CRMError`` for an answer it
cannot read, rather than guess: a skipped consent row would look like an unset purpose and be
written over.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connector.crm.types import (ConsentRecord, CRMListItem, Person, PersonListing, ShipmentType,
                                 WebhookInfo)
from connector.exceptions import CRMError
from connector.times import utc

# CustomerLanguage is an item of the tenant's own "customerlanguage" list (table cust_lang):
# {Id, Value, Tooltip}, Value being the name an admin typed ("English", "Norsk" ...). Ids differ per
# tenant, so only names are mapped. SuperOffice's suggested language codes (SE for Swedish, NO for
# Norwegian, DA/DK for Danish) are accepted too: user-guide/en/globalization/listcustlangs.editcustlang.md
_LANGUAGES = {
    "english": "en", "engelsk": "en", "en": "en",
    "norwegian": "nb", "norsk": "nb", "bokmål": "nb", "bokmal": "nb", "norsk bokmål": "nb",
    "norwegian bokmål": "nb", "no": "nb", "nb": "nb",
    "swedish": "sv", "svenska": "sv", "svensk": "sv", "se": "sv", "sv": "sv",
    "danish": "da", "dansk": "da", "da": "da", "dk": "da",
    "german": "de", "deutsch": "de", "tysk": "de", "de": "de",
    "dutch": "nl", "nederlands": "nl", "nl": "nl",
    "finnish": "fi", "suomi": "fi", "finsk": "fi", "fi": "fi",
    "french": "fr", "français": "fr", "francais": "fr", "fransk": "fr", "fr": "fr",
    "spanish": "es", "español": "es", "espanol": "es", "spansk": "es", "es": "es",
}


def parse_person_entity(entity: Any) -> Person:
    """Turn a SuperOffice PersonEntity (decoded JSON) into a ``Person``.

    Raises:
        CRMError: (permanent) the entity lacks what the connector needs.
    """
    if not isinstance(entity, Mapping):
        raise unreadable("a body that is not a PersonEntity")
    person_id = entity.get("PersonId")
    if not isinstance(person_id, int) or isinstance(person_id, bool):
        raise unreadable("a PersonEntity without PersonId")
    contact = entity.get("Contact") or {}
    created_by = entity.get("CreatedBy") or {}
    consents = entity.get("Consents") or []
    if not isinstance(consents, list):
        raise unreadable(f"person {person_id} with Consents that is not a list")
    return Person(
        id=person_id,
        first_name=entity.get("Firstname") or "",
        last_name=entity.get("Lastname") or "",
        email=_first_email(entity.get("Emails")),
        language=language_code(entity.get("CustomerLanguage")),
        company_name=(contact.get("Name") or None) if isinstance(contact, Mapping) else None,
        created_by_associate_id=_associate_id(created_by.get("AssociateId")
                                              if isinstance(created_by, Mapping) else None),
        consents=tuple(parse_consent_info(item, where=f"person {person_id} Consents[{i}]")
                       for i, item in enumerate(consents)),
        shipment_types=parse_shipment_types(entity.get("ShipmentTypes"), person_id),
    )


def parse_shipment_types(items: Any, person_id: int) -> tuple[ShipmentType, ...]:
    """Turn ``PersonEntity.ShipmentTypes[]`` ({Id, Name, ToolTip, Deleted, Rank, Selected …},
    "the person's available and selected shipment types") into ShipmentTypes, in the CRM's
    order (the order JSON Patch paths index).

    Raises:
        CRMError: (permanent) the list or an item is unreadable.
    """
    if items is None:
        return ()
    if not isinstance(items, list):
        raise unreadable(f"person {person_id} with ShipmentTypes that is not a list")
    types = []
    for index, item in enumerate(items):
        where = f"person {person_id} ShipmentTypes[{index}]"
        if not isinstance(item, Mapping):
            raise unreadable(f"{where} that is not an object")
        type_id = item.get("Id")
        if not isinstance(type_id, int) or isinstance(type_id, bool):
            raise unreadable(f"{where} without Id")
        types.append(ShipmentType(id=type_id, name=str(item.get("Name") or ""),
                                  selected=item.get("Selected") is True,
                                  deleted=item.get("Deleted") is True))
    return tuple(types)


def parse_consent_info(item: Any, *, where: str = "ConsentInfo") -> ConsentRecord:
    """Turn one SuperOffice ConsentInfo (``PersonEntity.Consents[]`` or ``GET .../Consent``)
    into a ``ConsentRecord`` with the CRM's keys.

    Raises:
        CRMError: (permanent) the row has no purpose or legal base key. Skipping it instead
            would make the connector think the purpose is unset and write over it.
    """
    if not isinstance(item, Mapping):
        raise unreadable(f"{where} that is not an object")
    purpose = item.get("ConsentPurposeKey")
    legal_basis = item.get("LegalBaseKey")
    if not purpose or not legal_basis:
        raise unreadable(f"{where} without ConsentPurposeKey or LegalBaseKey")
    return ConsentRecord(
        purpose=purpose,
        legal_basis=legal_basis,
        source=item.get("ConsentSourceKey") or "",
        comment=item.get("Comment") or "",
        registered=parse_date(item.get("Registered"), where=f"{where}.Registered"),
        registered_by=_associate_id(item.get("RegisteredAssociateId")),
        updated=parse_date(item.get("Updated"), where=f"{where}.Updated"),
        updated_by=_associate_id(item.get("UpdatedAssociateId")),
    )


def parse_person_row(row: Any, *, where: str = "person list row") -> PersonListing:
    """Turn one row of the OData person list into a ``PersonListing``.

    The id is the row's ``PrimaryKey``, the raw key every row carries (v1PersonEntity_GetAll.md
    sample), never the ``personId`` column: SLIM mode returns "just the display values", and
    a display value may be formatted ("1,234"). Dates are ISO strings ("Dates are always
    returned as ISO strings", docs/en/api/search/odata/index.md).

    Raises:
        CRMError: (permanent) the row has no usable person id or an unreadable date.
    """
    if not isinstance(row, Mapping):
        raise unreadable(f"{where} that is not an object")
    raw_id = row.get("PrimaryKey")
    if isinstance(raw_id, str) and raw_id.strip().isdigit():
        raw_id = int(raw_id)
    if not isinstance(raw_id, int) or isinstance(raw_id, bool) or raw_id <= 0:
        raise unreadable(f"{where} without a person id")
    return PersonListing(
        person_id=raw_id,
        registered=parse_date(row.get("personRegisteredDate"),
                              where=f"{where}.personRegisteredDate"),
        updated=parse_date(row.get("personUpdatedDate"), where=f"{where}.personUpdatedDate"),
    )


def parse_webhook(item: Any, *, where: str = "Webhook") -> WebhookInfo:
    """Turn a SuperOffice Webhook carrier into a ``WebhookInfo`` (the Secret is dropped).

    Raises:
        CRMError: (permanent) the item is not a webhook with a WebhookId.
    """
    if not isinstance(item, Mapping):
        raise unreadable(f"{where} that is not an object")
    webhook_id = item.get("WebhookId")
    if not isinstance(webhook_id, int) or isinstance(webhook_id, bool):
        raise unreadable(f"{where} without WebhookId")
    events = item.get("Events")
    return WebhookInfo(
        id=webhook_id,
        name=str(item.get("Name") or ""),
        events=tuple(str(e) for e in events) if isinstance(events, list) else (),
        state=str(item.get("State") or "Unknown"),
        target_url=str(item.get("TargetUrl") or ""),
    )


def parse_list_item(row: Any, *, where: str = "list item") -> CRMListItem:
    """Turn one item of ``GET List/<name>/Items`` ({Key, Name, Deleted, Active …}) into a
    ``CRMListItem``; deleted or inactive items are not active.

    Raises:
        CRMError: (permanent) the item is not an object.
    """
    if not isinstance(row, Mapping):
        raise unreadable(f"{where} that is not an object")
    return CRMListItem(key=str(row.get("Key") or ""), name=str(row.get("Name") or ""),
                       active=not row.get("Deleted") and row.get("Active", 1) != 0)


def parse_date(value: Any, *, where: str = "date") -> datetime | None:
    """Parse a SuperOffice date-time into an aware UTC datetime, or None when unset.

    SuperOffice writes UTC date-times without offset ("2026-11-29T10:15:00"); the generated
    doc samples carry offsets, which are honoured. Unset dates come as the .NET minimum
    "0001-01-01T00:00:00" (or the OLE zero date 1899-12-30 in older data): both give None.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise unreadable(f"{where} that is not a date")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise unreadable(f"{where} that is not an ISO date") from None
    if parsed.year < 1900:
        return None
    return utc(parsed)


def language_code(customer_language: Any) -> str | None:
    """Return the ISO 639-1 code for a PersonEntity.CustomerLanguage item, or None if unknown."""
    if not isinstance(customer_language, Mapping):
        return None
    name = customer_language.get("Value")
    if not isinstance(name, str):
        return None
    name = name.split("(")[0].strip().casefold()  # "English (UK)" -> "english"
    return _LANGUAGES.get(name)


def _first_email(emails: Any) -> str | None:
    for item in emails or []:
        value = item.get("Value") if isinstance(item, Mapping) else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _associate_id(value: Any) -> int | None:
    # 0 is SuperOffice's "no associate"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def unreadable(what: str) -> CRMError:
    """The permanent error for an answer of 200 that the connector cannot read."""
    return CRMError(f"CRM answered 200 with {what}", status=200, permanent=True)



"""Compare the purposes config with the CRM's own lists (purposes, legal bases, sources) and
its shipment types: keys the CRM does not have would make every write fail; inactive ones
are likely a mistake; different names confuse people who see both; a subscription whose
shipment type the CRM does not have would show on nobody's page."""

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from connector.consent import ConsentConfig, find_shipment_type, fold_key, pick_text
from connector.crm.types import CRMListItem, ShipmentType

KINDS = {"purposes": "purpose", "legal_bases": "legal basis", "sources": "source"}


@dataclass(frozen=True)
class Difference:
    """One finding. ``problem`` ones break or endanger writes; the rest are for information."""

    problem: bool
    message: str


def diff_config(config: ConsentConfig,
                crm_lists: Mapping[str, Sequence[CRMListItem]]) -> list[Difference]:
    """List where the config and the CRM's lists disagree.

    Args:
        config: the purposes config.
        crm_lists: the CRM's rows by kind: "purposes", "legal_bases", "sources".

    Returns:
        Problems first (missing or inactive keys), then differing names and CRM rows the
        config does not use.
    """
    problems, notes = [], []
    for kind, label in KINDS.items():
        crm_items = {fold_key(item.key): item for item in crm_lists[kind]}
        used = set()
        for name, entry in getattr(config, kind).items():
            item = crm_items.get(fold_key(entry.crm_key))
            where = f"{label} '{name}' (crm_key {entry.crm_key})"
            if item is None:
                problems.append(Difference(True, f"{where}: no such key in the CRM's list"))
                continue
            used.add(fold_key(item.key))
            if not item.active:
                problems.append(Difference(True, f"{where}: inactive in the CRM"))
            ours = pick_text(entry.name, "en")
            if ours.casefold() != item.name.casefold():
                notes.append(Difference(False, f"{where}: named '{ours}' here and "
                                               f"'{item.name}' in the CRM"))
        notes += [Difference(False, f"{label} {item.key} '{item.name}' is in the CRM but not "
                                    f"in the config")
                  for folded, item in crm_items.items() if folded not in used and item.active]
    return problems + notes


def diff_subscriptions(config: ConsentConfig,
                       shipment_types: Sequence[ShipmentType] | None) -> list[Difference]:
    """List the subscriptions whose shipment type the CRM does not have (a problem: the
    subscription would show on nobody's page), or has deleted, and those named in another
    case than the CRM's (a note).

    Args:
        config: the purposes config.
        shipment_types: the CRM's shipment types (any person's: a person entity lists every
            one available); None when there was no person to read them from.
    """
    if not config.subscriptions:
        return []
    if shipment_types is None:
        return [Difference(False, "the CRM has no person to read its shipment types from: "
                                  "the subscriptions were not checked")]
    problems, notes = [], []
    names = [item.name for item in shipment_types if not item.deleted]
    for key, subscription in config.subscriptions.items():
        wanted = (subscription.shipment_type_name if subscription.shipment_type_id is None
                  else subscription.shipment_type_id)
        where = f"subscription '{key}' (shipment_type {wanted!r})"
        found = find_shipment_type(subscription, shipment_types)
        if found is None:
            deleted = any(subscription.matches(item) for item in shipment_types)
            close = (difflib.get_close_matches(str(wanted), names, n=1, cutoff=0.6)
                     if isinstance(wanted, str) else [])
            hint = f" (did you mean '{close[0]}'?)" if close else (
                f"; it has {', '.join(repr(name) for name in names)}" if names else "")
            problems.append(Difference(True, f"{where}: {'deleted in' if deleted else 'not in'} "
                                             f"the CRM's shipment types{hint}; it would show on "
                                             f"nobody's page"))
        elif isinstance(wanted, str) and found.name != wanted:
            notes.append(Difference(False, f"{where}: the CRM writes it '{found.name}' (names "
                                           f"match whatever their case)"))
    return problems + notes

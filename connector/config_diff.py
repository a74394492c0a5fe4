"""Compare the purposes config with the CRM's own lists (purposes, legal bases, sources):
keys the CRM does not have would make every write fail; inactive ones are likely a mistake;
different names confuse people who see both."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from connector.consent import ConsentConfig, fold_key, pick_text
from connector.crm.types import CRMListItem

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

"""Small builders the tests share."""

from functools import cache

from connector.config import load_config
from connector.consent import ConsentConfig, ConsentRecord
from tests.conftest import ROOT


@cache
def shipped_config() -> ConsentConfig:
    """The shipped config/purposes.yaml, loaded once."""
    return load_config(ROOT / "config" / "purposes.yaml")


def record(purpose: str, legal_basis: str, source: str = "USER") -> ConsentRecord:
    """A consent row as the CRM would hold it."""
    return ConsentRecord(purpose=purpose, legal_basis=legal_basis, source=source)

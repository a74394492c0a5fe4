"""Small builders the tests share."""

import shutil
from functools import cache
from pathlib import Path

from connector.config import load_config
from connector.consent import ConsentConfig
from connector.crm.types import ConsentRecord
from tests.conftest import ROOT


@cache
def shipped_config() -> ConsentConfig:
    """The shipped config/purposes.yaml, loaded once."""
    return load_config(ROOT / "config" / "purposes.yaml")


def record(purpose: str, legal_basis: str, source: str = "USER") -> ConsentRecord:
    """A consent row as the CRM would hold it."""
    return ConsentRecord(purpose=purpose, legal_basis=legal_basis, source=source)


def shipped_config_copy(folder: Path) -> Path:
    """A copy of config/purposes.yaml in ``folder``, for tests that edit it."""
    path = folder / "purposes.yaml"
    shutil.copy(ROOT / "config" / "purposes.yaml", path)
    return path


def edit_file(path: Path, old: str, new: str) -> None:
    """Replace the first ``old`` in the file by ``new``, as an admin's edit would."""
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))

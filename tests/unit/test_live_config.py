"""LiveConfig: an edited purposes file is picked up; an invalid edit is refused, loudly."""

import logging

import pytest

from connector.config import LiveConfig, config_version
from connector.exceptions import ConfigError
from tests.conftest import ROOT
from tests.factories import edit_file, shipped_config_copy


@pytest.fixture
def config_file(tmp_path):
    return shipped_config_copy(tmp_path)


def test_an_edit_is_picked_up_without_a_restart(config_file):
    live = LiveConfig(config_file, check_every=0)
    before = live.version
    edit_file(config_file, '{en: Sales and service,', '{en: Sales & service,')
    assert live.current().purposes["sales_and_service"].name["en"] == "Sales & service"
    assert live.version != before == config_version(ROOT / "config" / "purposes.yaml")


def test_an_invalid_edit_is_refused_and_the_last_good_config_stays(config_file, caplog):
    live = LiveConfig(config_file, check_every=0)
    good_version = live.version
    edit_file(config_file, "legal_basis: legitimate_interest", "legal_basis: legitimate_intrest")
    line = next(n for n, text in enumerate(config_file.read_text().splitlines(), 1)
                if "legitimate_intrest" in text)
    with caplog.at_level(logging.ERROR, logger="connector.config"):
        config = live.current()
    assert config.purposes["sales_and_service"].default_legal_basis == "legitimate_interest"
    assert live.version == good_version
    assert f"{config_file}:{line}:" in caplog.text and "config.rejected" in caplog.text

    edit_file(config_file, "legitimate_intrest", "legitimate_interest")  # the admin fixes it
    live.current()
    assert live.version == good_version  # same content as before: same version


def test_the_file_is_looked_at_only_every_so_often(config_file):
    live = LiveConfig(config_file, check_every=3600)
    edit_file(config_file, '{en: Sales and service,', '{en: Sales & service,')
    assert live.current().purposes["sales_and_service"].name["en"] == "Sales and service"
    live.refresh()
    assert live.current().purposes["sales_and_service"].name["en"] == "Sales & service"


def test_the_first_load_must_succeed(config_file):
    edit_file(config_file, "crm_key: STORE", "crm_kye: STORE")
    with pytest.raises(ConfigError):
        LiveConfig(config_file)

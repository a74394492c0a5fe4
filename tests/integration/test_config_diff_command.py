"""`consent-connector config diff` against the sandbox CRM's lists, as an admin runs it."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def config_diff(env):
    return subprocess.run([sys.executable, "-m", "connector", "config", "diff"], cwd=ROOT,
                          env=os.environ | env, capture_output=True, text=True, timeout=60)


def test_the_shipped_config_against_superoffice_defaults(sandbox, connector_env):
    result = config_diff(connector_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PROBLEM" not in result.stdout
    assert ("note     source 'user' (crm_key USER): named 'Registered by our staff' here and "
            "'Registered by user' in the CRM") in result.stdout
    assert "legal basis 61C 'Legal obligation' is in the CRM but not in the config" in result.stdout
    assert "0 problem(s)" in result.stdout


def test_a_key_the_crm_does_not_have_is_a_problem(sandbox, connector_env, tmp_path):
    config = tmp_path / "purposes.yaml"
    config.write_text((ROOT / "config" / "purposes.yaml").read_text()
                      .replace("crm_key: EMARKETING", "crm_key: NEWSLETTER"))
    result = config_diff(connector_env | {"CONSENT_CONFIG": str(config)})
    assert result.returncode == 1
    assert ("PROBLEM  purpose 'e_marketing' (crm_key NEWSLETTER): no such key in the CRM's list"
            in result.stdout)
    assert "1 problem(s)" in result.stdout


def test_a_subscription_whose_shipment_type_the_crm_lacks_is_a_problem_with_a_suggestion(
        sandbox, connector_env, tmp_path):
    sandbox.create_person("Any", "One", "any.diff@example.org")  # whose shipment types it reads
    config = tmp_path / "purposes.yaml"
    shipped = (ROOT / "config" / "purposes.yaml").read_text()
    config.write_text(shipped.replace('shipment_type: "Product news"',
                                      'shipment_type: "Product newz"'))

    result = config_diff(connector_env | {"CONSENT_CONFIG": str(config)})

    assert result.returncode == 1, result.stdout + result.stderr
    assert ("PROBLEM  subscription 'product_news' (shipment_type 'Product newz'): not in the CRM's "
            "shipment types (did you mean 'Product news'?); it would show on nobody's page"
            in result.stdout)

    config.write_text(shipped.replace('shipment_type: "Product news"',
                                      'shipment_type: "product NEWS"'))
    differently_cased = config_diff(connector_env | {"CONSENT_CONFIG": str(config)})
    assert differently_cased.returncode == 0
    assert ("note     subscription 'product_news' (shipment_type 'product NEWS'): the CRM writes "
            "it 'Product news' (names match whatever their case)" in differently_cased.stdout)


def test_config_diff_asks_only_for_the_crm_and_the_purposes_file(sandbox, connector_env):
    unused = ("SECRET_KEY", "MAIL_FROM", "PUBLIC_BASE_URL", "SUPEROFFICE_WEBHOOK_SECRET",
              "SMTP_URL")
    env = {k: v for k, v in (os.environ | connector_env).items() if k not in unused}
    result = subprocess.run([sys.executable, "-m", "connector", "config", "diff"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 problem(s)" in result.stdout

"""Settings.from_env: environment variables → typed settings, or SettingsError naming the variable."""

from pathlib import Path

import pytest

from connector import defaults
from connector.exceptions import SettingsError
from connector.settings import READING, Settings

WEBHOOK_SECRETS = ("current-webhook-secret", "previous-webhook-secret")
SECRET_KEYS = ("new-secret-key-0123456789", "old-secret-key-9876543210")
ACCESS_TOKEN = "8A:Cust12345.super-secret-access-token"
TICKET = "7T:super-secret-ticket"
APP_TOKEN = "app-token-secret-value"

FULL = {
    "SUPEROFFICE_API_URL": "https://online.superoffice.com/Cust12345/api/v1/",
    "SUPEROFFICE_ACCESS_TOKEN": ACCESS_TOKEN,
    "SUPEROFFICE_APP_TOKEN": APP_TOKEN,
    "SUPEROFFICE_WEBHOOK_SECRET": " , ".join(WEBHOOK_SECRETS),
    "SUPEROFFICE_ASSOCIATE_ID": "9",
    "REDIS_URL": "redis://localhost:6379/0",
    "SMTP_URL": "smtp://mail.example.com:587",
    "MAIL_FROM": "privacy@example.com",
    "PUBLIC_BASE_URL": "https://consent.example.com/",
    "SECRET_KEY": ",".join(SECRET_KEYS),
    "RETRY_INTERVALS": "1,2,3",
}
REQUIRED = {key: FULL[key] for key in ("SUPEROFFICE_API_URL", "SUPEROFFICE_ACCESS_TOKEN",
                                       "SUPEROFFICE_WEBHOOK_SECRET", "MAIL_FROM",
                                       "PUBLIC_BASE_URL", "SECRET_KEY")}


def without(env: dict, *names: str) -> dict:
    return {k: v for k, v in env.items() if k not in names}


def error_for(env: dict) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    return caught.value


def test_a_full_environment_parses():
    settings = Settings.from_env(FULL)
    assert settings.superoffice_api_url == "https://online.superoffice.com/Cust12345/api/v1"
    assert settings.public_base_url == "https://consent.example.com"
    assert settings.superoffice_access_token == ACCESS_TOKEN
    assert settings.superoffice_ticket is None
    assert settings.superoffice_app_token == APP_TOKEN
    assert settings.webhook_secrets == WEBHOOK_SECRETS
    assert settings.secret_keys == SECRET_KEYS
    assert settings.associate_id == 9
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.smtp_url == "smtp://mail.example.com:587"
    assert settings.mail_from == "privacy@example.com"
    assert settings.retry_intervals == (1, 2, 3)


def test_defaults_for_optional_variables():
    settings = Settings.from_env(REQUIRED)
    assert settings.consent_config == Path("config/purposes.yaml")
    assert settings.data_dir == Path("var")
    assert settings.outbox_dir == Path("var") / "outbox"
    assert settings.link_max_age_days == 21 == defaults.LINK_MAX_AGE_DAYS
    assert settings.retry_intervals == defaults.RETRY_INTERVALS
    assert settings.associate_id is None
    assert settings.redis_url is None and settings.smtp_url is None
    assert settings.superoffice_app_token is None


def test_optional_paths_and_numbers_are_read():
    settings = Settings.from_env({**REQUIRED, "CONSENT_CONFIG": "/etc/cc/purposes.yaml",
                                  "DATA_DIR": "/srv/cc", "LINK_MAX_AGE_DAYS": "7"})
    assert settings.consent_config == Path("/etc/cc/purposes.yaml")
    assert settings.data_dir == Path("/srv/cc")
    assert settings.link_max_age_days == 7


def test_single_secret_is_a_one_tuple():
    settings = Settings.from_env({**REQUIRED, "SUPEROFFICE_WEBHOOK_SECRET": "only-one",
                                  "SECRET_KEY": "0123456789abcdef"})
    assert settings.webhook_secrets == ("only-one",)
    assert settings.secret_keys == ("0123456789abcdef",)


def test_ticket_instead_of_access_token():
    env = {**without(REQUIRED, "SUPEROFFICE_ACCESS_TOKEN"), "SUPEROFFICE_TICKET": TICKET}
    settings = Settings.from_env(env)
    assert settings.superoffice_ticket == TICKET
    assert settings.superoffice_access_token is None


# --- missing variables ---------------------------------------------------------------------------

@pytest.mark.parametrize("variable", ["SUPEROFFICE_API_URL", "SUPEROFFICE_WEBHOOK_SECRET",
                                      "SECRET_KEY", "PUBLIC_BASE_URL", "MAIL_FROM"])
@pytest.mark.parametrize("how", ["unset", "empty", "blank"])
def test_each_missing_required_variable_is_named(variable, how):
    env = without(FULL, variable)
    if how == "empty":
        env[variable] = ""
    elif how == "blank":
        env[variable] = "   "
    error = error_for(env)
    assert error.variable == variable
    assert variable in str(error)


@pytest.mark.parametrize("variable", ["SUPEROFFICE_WEBHOOK_SECRET", "SECRET_KEY"])
def test_a_list_of_only_commas_is_missing(variable):
    assert error_for({**FULL, variable: " , ,"}).variable == variable


def test_no_credentials_names_access_token():
    error = error_for(without(FULL, "SUPEROFFICE_ACCESS_TOKEN"))
    assert error.variable == "SUPEROFFICE_ACCESS_TOKEN"
    assert "SUPEROFFICE_TICKET" in error.problem


def test_both_credentials_names_ticket():
    error = error_for({**FULL, "SUPEROFFICE_TICKET": TICKET})
    assert error.variable == "SUPEROFFICE_TICKET"


# --- invalid values ----------------------------------------------------------------------------

@pytest.mark.parametrize("variable", ["SUPEROFFICE_API_URL", "PUBLIC_BASE_URL"])
@pytest.mark.parametrize("value", ["online.superoffice.com/Cust12345", "ftp://example.com",
                                   "https://", "localhost:8080", "/relative/path"])
def test_url_without_http_scheme_or_host_is_refused(variable, value):
    error = error_for({**FULL, variable: value})
    assert error.variable == variable
    assert value in error.problem


def test_secret_key_shorter_than_16_characters_is_refused():
    error = error_for({**FULL, "SECRET_KEY": "short"})
    assert error.variable == "SECRET_KEY"
    assert "16" in error.problem


def test_every_rotated_secret_key_must_be_long_enough():
    error = error_for({**FULL, "SECRET_KEY": f"{SECRET_KEYS[0]},fifteen-chars!!"[:-1]})
    assert error.variable == "SECRET_KEY"


def test_secret_key_of_exactly_16_characters_is_accepted():
    assert Settings.from_env({**FULL, "SECRET_KEY": "x" * 16}).secret_keys == ("x" * 16,)


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", "9a"])
def test_associate_id_must_be_a_positive_whole_number(value):
    error = error_for({**FULL, "SUPEROFFICE_ASSOCIATE_ID": value})
    assert error.variable == "SUPEROFFICE_ASSOCIATE_ID"
    assert repr(value) in error.problem


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_link_max_age_days_must_be_positive(value):
    assert error_for({**FULL, "LINK_MAX_AGE_DAYS": value}).variable == "LINK_MAX_AGE_DAYS"


@pytest.mark.parametrize("value", ["1,x", "1,,2", "10;60", "-1", "1.5"])
def test_retry_intervals_must_be_comma_separated_seconds(value):
    error = error_for({**FULL, "RETRY_INTERVALS": value})
    assert error.variable == "RETRY_INTERVALS"


def test_retry_intervals_tolerate_spaces():
    assert Settings.from_env({**FULL, "RETRY_INTERVALS": " 10, 60 ,300"}).retry_intervals == (
        10, 60, 300)


# --- secrets stay out of repr ----------------------------------------------------------------------

@pytest.mark.parametrize("env", [FULL, {**without(FULL, "SUPEROFFICE_ACCESS_TOKEN"),
                                        "SUPEROFFICE_TICKET": TICKET}], ids=["token", "ticket"])
def test_repr_does_not_show_secrets(env):
    settings = Settings.from_env(env)
    text = f"{settings!r} {settings!s}"
    for secret in (*WEBHOOK_SECRETS, *SECRET_KEYS, ACCESS_TOKEN, TICKET, APP_TOKEN):
        assert secret not in text
    assert "online.superoffice.com" in repr(settings)


def test_settings_are_immutable():
    settings = Settings.from_env(FULL)
    with pytest.raises(AttributeError):
        settings.secret_keys = ("x" * 16,)


@pytest.mark.parametrize("variable, value", [("SUPEROFFICE_ASSOCIATE_ID", "²"),
                                             ("RETRY_INTERVALS", "1,²")])
def test_unicode_digit_lookalikes_are_a_settings_error(variable, value):
    assert error_for({**FULL, variable: value}).variable == variable


# --- SuperOffice Online: the system user ---------------------------------------------------------

@pytest.fixture
def system_user_env(tmp_path):
    key = tmp_path / "app.pem"
    key.write_text("a key file; its content is read when the client is built")
    return {**without(REQUIRED, "SUPEROFFICE_API_URL", "SUPEROFFICE_ACCESS_TOKEN"),
            "SUPEROFFICE_CONTEXT_IDENTIFIER": "Cust12345",
            "SUPEROFFICE_CLIENT_SECRET": "client-secret-value",
            "SUPEROFFICE_SYSTEM_USER_TOKEN": "Consent Connector-8k8Q7DmBgo",
            "SUPEROFFICE_PRIVATE_KEY_FILE": str(key)}


def test_the_system_user_settings_need_no_api_url(system_user_env):
    settings = Settings.from_env(system_user_env)

    assert settings.superoffice_api_url is None
    assert settings.system_user.login_url == "https://online.superoffice.com"
    assert settings.system_user.state_url == "https://online.superoffice.com/api/state/Cust12345"
    assert "client-secret-value" not in repr(settings.system_user)
    assert "8k8Q7DmBgo" not in repr(settings.system_user)


@pytest.mark.parametrize("environment", ["sod", "stage", "online", "SOD"])
def test_the_environment_picks_the_login(system_user_env, environment):
    settings = Settings.from_env({**system_user_env, "SUPEROFFICE_ENVIRONMENT": environment})
    assert settings.system_user.login_url == f"https://{environment.lower()}.superoffice.com"


def test_a_login_url_overrides_the_environment_and_an_api_url_overrides_discovery(
        system_user_env):
    settings = Settings.from_env({**system_user_env,
                                  "SUPEROFFICE_LOGIN_URL": "http://127.0.0.1:8090/",
                                  "SUPEROFFICE_API_URL": "https://sod2.superoffice.com/Cust12345/api/v1"})
    assert settings.system_user.login_url == "http://127.0.0.1:8090"
    assert settings.superoffice_api_url == "https://sod2.superoffice.com/Cust12345/api/v1"


@pytest.mark.parametrize("variable", ["SUPEROFFICE_CONTEXT_IDENTIFIER", "SUPEROFFICE_CLIENT_SECRET",
                                      "SUPEROFFICE_SYSTEM_USER_TOKEN",
                                      "SUPEROFFICE_PRIVATE_KEY_FILE"])
def test_each_missing_system_user_setting_is_named(system_user_env, variable):
    assert error_for(without(system_user_env, variable)).variable == variable


@pytest.mark.parametrize("variable, value", [
    ("SUPEROFFICE_ENVIRONMENT", "production"),
    ("SUPEROFFICE_CONTEXT_IDENTIFIER", "12345"),
    ("SUPEROFFICE_PRIVATE_KEY_FILE", "/no/such/key.pem"),
    ("SUPEROFFICE_TOKEN_CERTIFICATE_FILE", "/no/such/cert.pem"),
    ("SUPEROFFICE_LOGIN_URL", "sod.superoffice.com"),
])
def test_an_invalid_system_user_setting_is_named(system_user_env, variable, value):
    assert error_for({**system_user_env, variable: value}).variable == variable


def test_a_system_user_and_a_fixed_token_together_are_refused(system_user_env):
    error = error_for({**system_user_env, "SUPEROFFICE_TICKET": TICKET})
    assert error.variable == "SUPEROFFICE_TICKET"


def test_no_crm_settings_at_all_names_the_system_user_token():
    error = error_for(without(REQUIRED, "SUPEROFFICE_API_URL", "SUPEROFFICE_ACCESS_TOKEN"))
    assert error.variable == "SUPEROFFICE_SYSTEM_USER_TOKEN"
    assert "SUPEROFFICE_API_URL" in error.problem  # and says what on-site needs


@pytest.mark.parametrize("address, suggestion", [
    ("https://sod.superoffice.com/Cust12345", "https://sod.superoffice.com/Cust12345/api/v1"),
    ("https://sod.superoffice.com/Cust12345/api/", "https://sod.superoffice.com/Cust12345/api/v1"),
])
def test_an_api_address_without_api_v1_is_refused_with_the_address_meant(address, suggestion):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**REQUIRED, "SUPEROFFICE_API_URL": address})
    assert str(refused.value).startswith("SUPEROFFICE_API_URL: must be the REST API's address, "
                                         "ending in /api/v1")
    assert f"did you mean {suggestion!r}?" in str(refused.value)


def test_every_missing_or_invalid_setting_is_named_at_once():
    error = error_for({**without(REQUIRED, "MAIL_FROM", "PUBLIC_BASE_URL"),
                       "SECRET_KEY": "short", "SMTP_URL": "smtp:/127.0.0.1:2526"})

    assert [problem.variable for problem in error.problems] == [
        "SMTP_URL", "MAIL_FROM", "PUBLIC_BASE_URL", "SECRET_KEY"]
    assert str(error).splitlines() == [str(problem) for problem in error.problems]
    assert (error.variable, error.problem) == ("SMTP_URL", error.problems[0].problem)


def test_a_command_that_only_reads_asks_for_the_crm_and_nothing_it_does_not_use():
    crm_only = {key: REQUIRED[key] for key in ("SUPEROFFICE_API_URL", "SUPEROFFICE_ACCESS_TOKEN")}

    settings = Settings.from_env(crm_only, READING)

    assert (settings.mail_from, settings.public_base_url, settings.secret_keys,
            settings.webhook_secrets) == ("", "", (), ())
    assert {p.variable for p in error_for(crm_only).problems} == {
        "SUPEROFFICE_WEBHOOK_SECRET", "MAIL_FROM", "PUBLIC_BASE_URL", "SECRET_KEY"}
    with pytest.raises(SettingsError) as given_but_wrong:  # what is set is still checked
        Settings.from_env({**crm_only, "SECRET_KEY": "short"}, READING)
    assert given_but_wrong.value.variable == "SECRET_KEY"

"""What the commands say about themselves: the version, lists of commands that fit a line,
and an explained sandbox."""

from importlib.metadata import version

import click
from click.testing import CliRunner

from connector.cli import main
from connector.settings import SHIPPED_PURPOSES
from sandbox.__main__ import build_parser


def help_of(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_command_tells_its_version():
    result = CliRunner().invoke(main, ["--version"])
    assert (result.exit_code, result.output) == (0, f"consent-connector "
                                                    f"{version('consent-connector')}\n")


def test_the_help_says_what_each_command_is_for_and_no_line_is_cut():
    top = help_of()
    for task in ("worker", "config check", "doctor", "status", "jobs list", "export PERSON_ID",
                 "reconcile", "db upgrade", "ledger verify", "retention report",
                 "expiry report", "reconsent"):
        assert task in top
    groups = [("",)] + [(name,) for name, command in main.commands.items()
                        if isinstance(command, click.Group)]
    for group in groups:
        listing = help_of(*filter(None, group)).split("Commands:\n", 1)[1]
        assert "..." not in listing, f"{group}: {listing}"


def test_every_sandbox_option_is_explained():
    parser = build_parser()
    unexplained = [action.dest for action in parser._actions if not action.help]
    assert unexplained == []


def test_shell_completion_as_the_readme_documents_it_completes_commands():
    """README: eval "$(_CONSENT_CONNECTOR_COMPLETE=bash_source consent-connector)"."""
    script = CliRunner().invoke(main, [], prog_name="consent-connector",
                                env={"_CONSENT_CONNECTOR_COMPLETE": "bash_source"})
    assert "_consent_connector_completion()" in script.output
    completed = CliRunner().invoke(main, [], prog_name="consent-connector", env={
        "_CONSENT_CONNECTOR_COMPLETE": "bash_complete", "COMP_WORDS": "consent-connector exp",
        "COMP_CWORD": "1"})
    assert completed.output.splitlines() == ["plain,expiry", "plain,export"]


def test_without_consent_config_or_a_config_folder_the_shipped_purposes_file_is_used(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an installed copy, run from any folder
    monkeypatch.delenv("CONSENT_CONFIG", raising=False)

    result = CliRunner().invoke(main, ["config", "check"])

    assert result.exit_code == 0, result.output
    assert result.output == f"{SHIPPED_PURPOSES}: valid — 2 purposes, 4 legal bases, 3 sources.\n"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "purposes.yaml").write_text("languages: [en]\n")
    assert CliRunner().invoke(main, ["config", "check"]).exit_code == 1  # one beside it wins


def test_a_malformed_smtp_url_is_named_in_one_line_not_a_traceback():
    env = {"SUPEROFFICE_API_URL": "https://sod.superoffice.com/Cust12345/api/v1",
           "SUPEROFFICE_ACCESS_TOKEN": "token", "SMTP_URL": "smtp:/127.0.0.1:2526"}

    for command in (["status"], ["worker"], ["config", "diff"]):
        result = CliRunner().invoke(main, command, env=env)
        assert result.exit_code == 2, result.output
        assert ("SMTP_URL: no host, expected e.g. smtp+starttls://mail.example.com:587"
                in result.output)
        assert "Traceback" not in result.output

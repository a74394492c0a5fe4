"""The README's commands, as a new user runs them beside `make demo SERVE=1`: every fenced
block marked ``<!-- runnable beside the demo -->`` is run command by command in a shell that
sourced the demo's settings, from a folder laid out like a checkout. Each command must exit 0
and print every line the README shows under it, apart from times, ports, hex versions and
the folders above a file (lines with "…" are abridged and not compared)."""

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

MARKER = "<!-- runnable beside the demo -->"


@dataclass(frozen=True)
class Command:
    line: int
    command: str
    expected: tuple[str, ...]


def runnable_commands(readme: str) -> list[Command]:
    """The commands of the marked blocks, each with the output the README shows for it."""
    commands = []
    lines = readme.splitlines()
    for number, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        assert lines[number + 1].startswith("```"), f"README:{number + 2}: no block after it"
        end = next(i for i in range(number + 2, len(lines)) if lines[i].startswith("```"))
        for index in range(number + 2, end):
            if lines[index].startswith("$ "):
                output = []
                for following in lines[index + 1:end]:
                    if following.startswith("$ "):
                        break
                    output.append(following)
                command = re.sub(r"\s+#\s.*$", "", lines[index][2:]).strip()
                commands.append(Command(index + 1, command, tuple(output)))
    return commands


_VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(\+00:00)?"), "<time>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "<host>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<version>"),
    (re.compile(r"(?<![\w.])/(?:[\w.+-]+/)+(?=[\w.+-]+/[\w.+-]+)"), ""),
]


def normalized(text: str) -> str:
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


@pytest.fixture(scope="module")
def beside_the_demo(tmp_path_factory):
    """A folder laid out like a checkout (config/ and the demo's var/demo), with a demo
    serving from it; the shell environment of a fresh terminal."""
    folder = tmp_path_factory.mktemp("checkout")
    (folder / "config").symlink_to(ROOT / "config")
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/bin:/bin",
           "LANG": "C.UTF-8"}
    demo = subprocess.Popen([sys.executable, "-m", "sandbox.demo"], cwd=ROOT,
                            env={**os.environ, "DATA_DIR": str(folder / "var" / "demo"),
                                 "CONSENT_CONFIG": str(folder / "config" / "purposes.yaml"),
                                 "SERVE": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        printed = []
        for line in demo.stdout:
            printed.append(line)
            if line.startswith("Stop with Ctrl-C") or "DEMO FAILED" in line:
                break
        assert "Everything keeps running" in "".join(printed), "".join(printed)
        yield folder, env
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        demo.wait(30)


COMMANDS = runnable_commands((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_marks_commands_to_run():
    assert [command.command for command in COMMANDS if "status" in command.command]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"README:{c.line} {c.command}")
def test_a_readme_command_runs_as_shown(beside_the_demo, command):
    folder, env = beside_the_demo
    result = subprocess.run(["bash", "-c", f"source var/demo/env && {command.command}"],
                            cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    printed = result.stdout + result.stderr
    assert result.returncode == 0, printed
    actual = {normalized(line) for line in printed.splitlines()}
    missing = [line for line in command.expected
               if line.strip() and "…" not in line and normalized(line) not in actual]
    assert missing == [], f"README:{command.line} shows lines the command did not print:\n" \
                          + "\n".join(missing) + "\n--- it printed:\n" + printed

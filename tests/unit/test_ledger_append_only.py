"""The ledger is append-only: no code path in connector/ or workers/ updates or deletes a ledger
entry, except erasure, which only replaces identifying proof (read from the source with ast)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ALLOWED = {("connector/evidence/ledger.py", "erase_personal_proof", "update")}
"""Where an entry may be changed: erasure replaces the identifying proof by a marker."""


def writes_to_ledger_entries() -> set[tuple[str, str, str]]:
    """(file, enclosing function, update|delete) of every ``update(ledger_entries)`` or
    ``delete(ledger_entries)`` call, and of every SQL text that updates or deletes it."""
    found = set()
    for path in [*ROOT.glob("connector/**/*.py"), *ROOT.glob("workers/**/*.py")]:
        tree = ast.parse(path.read_text(), filename=str(path))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                where = (str(path.relative_to(ROOT)), function.name)
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in ("update", "delete") and node.args
                        and isinstance(node.args[0], ast.Name)
                        and node.args[0].id == "ledger_entries"):
                    found.add((*where, node.func.id))
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    sql = " ".join(node.value.lower().split())
                    for verb, pattern in (("update", "update ledger_entries"),
                                          ("delete", "delete from ledger_entries")):
                        if pattern in sql:
                            found.add((*where, verb))
    return found


def test_no_code_path_updates_or_deletes_a_ledger_entry_but_erasure():
    assert writes_to_ledger_entries() == ALLOWED

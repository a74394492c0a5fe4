"""The map of the package's imports: one direction, no cycle, nothing imports the entry points.

Every ``import`` and ``from … import`` of connector/ and workers/ is read with ``ast``, at
module level and inside functions alike, and resolved to the project module it names.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connector", "workers")
ENTRY_POINTS = ("connector.web.app", "connector.cli")
"""The app factory and the command: they import everything, nothing imports them (but
``python -m connector``, connector/__main__.py, which runs the command)."""


def project_modules() -> dict[str, Path]:
    """Dotted name → file, for every module of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


MODULES = project_modules()


def resolve(name: str) -> str | None:
    """The project module ``name`` is, or lies in (``connector.keys.ONBOARDING`` → keys)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def imports_of(module: str) -> list[tuple[str, bool]]:
    """(imported project module, inside a function?) for every import in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            local = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((resolve(alias.name), in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([child.module] if child.module else []))
                found.extend((resolve(f"{base}.{alias.name}") or resolve(base), in_function)
                             for alias in child.names)
            visit(child, local)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return [(target, local) for target, local in found if target and target != module]


GRAPH = {module: sorted({target for target, _ in imports_of(module)}) for module in MODULES}


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                strong(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            strong(node)
    return found


def importers_of(prefix: str) -> dict[str, list[str]]:
    """Modules outside ``prefix`` that import a module in it, with what they import."""
    def inside(module: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    return {module: [target for target in targets if inside(target)]
            for module, targets in GRAPH.items()
            if not inside(module) and any(inside(target) for target in targets)}


def test_the_walk_sees_the_packages_and_their_imports():
    assert "connector.web.app" in MODULES and "workers.jobs" in MODULES
    assert "connector.plans" in GRAPH["workers.jobs"]
    # A cycle made up here is found: the check below can fail.
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_no_module_imports_another_in_a_circle():
    assert cycles(GRAPH) == []


def test_no_project_module_is_imported_inside_a_function():
    local = [(module, target) for module in MODULES
             for target, in_function in imports_of(module) if in_function]
    assert local == []


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_no_module_imports_the_app_factory_or_the_command(entry_point):
    importers = [module for module, targets in GRAPH.items() if entry_point in targets]
    assert [module for module in importers if module != "connector.__main__"] == []


def test_nothing_outside_the_web_package_imports_it():
    assert importers_of("connector.web") == {}


def test_only_the_command_imports_the_commands():
    assert set(importers_of("connector.commands")) == {"connector.cli"}


def test_connector_reaches_the_workers_only_from_the_worker_command():
    """The web and support queue jobs by dotted path (connector.queueing); only the
    ``worker`` command starts the worker itself."""
    assert set(importers_of("workers")) == {"connector.commands.worker"}


PERSON_CREATED_MODULES = 41
"""What the webhook route and the onboarding job load (docs/architecture.md, "The way of one
person.created"): raise it only together with that page."""


def closure(*modules: str) -> set[str]:
    """The modules ``modules`` import, directly or through others."""
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(GRAPH[module])
    return seen


def test_a_person_created_loads_no_more_modules_than_the_map_says():
    loaded = closure("connector.web.webhooks", "workers.jobs")
    assert len(loaded) <= PERSON_CREATED_MODULES, sorted(loaded)
    assert not any(module.startswith(("connector.support", "connector.exports",
                                      "connector.commands")) for module in loaded)

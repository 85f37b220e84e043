"""The package's modules form layers: no import cycle, and engine code stays in its backend.

Imports under `if TYPE_CHECKING:` count: a cycle there still ties the modules together.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "persistence"
GENERATOR = Path(__file__).parents[1] / "codegen"
BACKENDS = ("persistence._sqlite", "persistence._postgres")
URL_READERS = {"persistence._urls": {"persistence._postgres.pooling"}}
"""Modules beside database.py that may import a backend module: the one each may import."""
ENGINE_DRIVERS = ("sqlite3", "asyncpg")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """The dotted name of a module file of the package."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Every module of the package, with every module it imports (the package's and others)."""
    paths = sorted(package.rglob("*.py"))
    modules = {module_name(path, package) for path in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        found = graph.setdefault(module_name(path, package), set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from package import module` imports the module; a name, its module.
                submodules = {f"{node.module}.{alias.name}" for alias in node.names}
                found.update(submodules & modules or {node.module})
    return graph


def ours(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between the package's own modules, a package counting as its __init__."""
    return {
        name: {other for other in found if other in graph and other != name}
        for name, found in graph.items()
    }


def within(name: str, prefix: str) -> bool:
    """Whether module `name` is `prefix` or inside it."""
    return name == prefix or name.startswith(f"{prefix}.")


def test_no_import_cycle() -> None:
    """The modules can be ordered so that each imports only modules below it."""
    graph = ours(imports())
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None
    assert order.index("persistence._interface") < order.index("persistence._backend")


def test_no_import_cycle_in_the_generator() -> None:
    """The generator's modules, under codegen/, can be ordered in the same way."""
    graph = ours(imports(GENERATOR))
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None
    assert order.index("codegen.model") < order.index("codegen.queries")


def test_engine_types_stay_in_their_backend() -> None:
    """Only a backend imports its driver; no backend imports the other or is imported elsewhere.

    database.py opens the backends, so it alone imports them; _urls.py reads a PostgreSQL URL's
    PgBouncer options, so it may import `_postgres.pooling`, and nothing else of a backend.
    """
    graph = imports()
    for name, found in graph.items():
        in_backend = [b for b in BACKENDS if within(name, b)]
        for driver in ENGINE_DRIVERS:
            uses = any(within(module, driver) for module in found)
            if uses:
                assert in_backend, f"{name} imports {driver}"
        for backend in BACKENDS:
            reached = {module for module in found if within(module, backend)}
            if reached and not within(name, backend):
                allowed = URL_READERS.get(name, reached)
                assert name in URL_READERS or name == "persistence.database", (
                    f"{name} imports {backend}"
                )
                assert reached <= allowed, f"{name} imports {sorted(reached - allowed)}"


STRUCTURE = Path(__file__).parents[1] / "docs" / "STRUCTURE.md"


def declared_layers() -> dict[str, int]:
    """The layer of each module prefix, as docs/STRUCTURE.md's table gives it."""
    text = STRUCTURE.read_text(encoding="utf-8")
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    layers: dict[str, int] = {}
    number = 0
    for line in block.splitlines():
        head, _, names = line.partition(":")
        if head.startswith("layer "):
            number = int(head.split()[1])
        else:
            names = line
        for name in names.split(","):
            if name.strip():
                layers[name.strip()] = number
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int:
    """The layer of the longest declared prefix that names `module`."""
    prefixes = [prefix for prefix in layers if within(module, prefix)]
    assert prefixes, f"{module} is in no layer of docs/STRUCTURE.md"
    return layers[max(prefixes, key=len)]


def test_no_module_imports_one_above_it() -> None:
    """Each module imports only modules of its own layer or below, as docs/STRUCTURE.md says."""
    layers = declared_layers()
    assert len(layers) > 10  # the table was read
    upward = [
        f"{name} (layer {layer_of(name, layers)}) imports {other} (layer {layer_of(other, layers)})"
        for name, found in ours(imports()).items()
        for other in sorted(found)
        if layer_of(other, layers) > layer_of(name, layers)
    ]
    assert upward == []


LONGEST_MODULE = 600
"""Lines a hand-written module may have at most: past that, it holds more than one role."""


def test_no_hand_written_module_is_over_the_longest() -> None:
    """Each module of the package but the generated interface fits in LONGEST_MODULE lines."""
    lengths = {
        module_name(path): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "queries.py"  # written by `make generate`
    }
    assert len(lengths) > 50  # the package was read
    assert {name: n for name, n in lengths.items() if n > LONGEST_MODULE} == {}


def test_a_sqlite_process_loads_no_postgresql_driver() -> None:
    """The package, and its command line, import asyncpg only to open a PostgreSQL URL.

    Each command-line call is a process of its own: asyncpg and the backend over it were a
    tenth of a second of its start, spent for SQLite too.
    """
    probe = (
        "import sys, persistence, persistence.__main__;"
        "print(sorted(name for name in sys.modules"
        " if name.split('.')[0] == 'asyncpg' or name.startswith('persistence._postgres.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    # a URL's pooling options and a script's statements are read without the driver
    assert loaded.strip() == "['persistence._postgres.pooling', 'persistence._postgres.scripts']"

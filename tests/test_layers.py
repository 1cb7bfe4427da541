"""The import rules of docs/architecture.md, checked by reading the code (ast), not by running it.

Every rule is one row of :data:`RULES`: which modules, what they must not
import (directly or, for ``transitive`` rows, through any other module of
ours), and what alone they may import of a forbidden package.  A rule that
turns out wrong is changed here and in docs/architecture.md together;
there are no per-module exceptions.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import remotecomm

ROOT = Path(remotecomm.__file__).parent

# remotecomm.server is the composition root (makeService): it may build anything.
MANAGER_PACKAGES = ("remotecomm.sessions", "remotecomm.accounts", "remotecomm.web",
                    "remotecomm.store", "remotecomm.xmpp", "remotecomm.reports",
                    "remotecomm.scheduling", "remotecomm.maintenance", "remotecomm.fleet",
                    "remotecomm.portal")
RELAY_SEAM = ("remotecomm.relay.gateway", "remotecomm.relay.gateway_http")
SERVER_LIBRARIES = ("sqlalchemy", "alembic", "argon2", "wokkel", "prometheus_client")
# What carries bytes between processes: XMPP, HTTP and WebSocket code, ours and libraries'.
TRANSPORTS = ("remotecomm.xmpp", "remotecomm.web", "remotecomm.json_http", "remotecomm.relay",
              "twisted.web", "twisted.words", "autobahn", "treq", "wokkel")


@dataclass(frozen=True)
class Rule:
    """``modules`` (prefixes) must not import ``forbidden`` (prefixes), except ``allowed``."""

    why: str
    modules: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    transitive: bool = False


RULES = (
    # -- the relay ↔ manager seam -------------------------------------------------------
    Rule("the relay core does no I/O of its own and knows no store: the outbox reaches it "
         "through an interface",
         ("remotecomm.relay.core",),
         ("sqlalchemy", "alembic", "remotecomm.store", "remotecomm.relay.logs",
          "remotecomm.relay.schema", "twisted.web", "autobahn", "treq"),
         transitive=True),
    Rule("the relay imports no manager code (its own store uses only the neutral engine)",
         ("remotecomm.relay",),
         MANAGER_PACKAGES, allowed=("remotecomm.store.engine",)),
    Rule("manager code reaches the relay only through the seam",
         MANAGER_PACKAGES, ("remotecomm.relay",), allowed=RELAY_SEAM),
    # -- device messages apart from the XMPP wire; store, sessions, accounts -------------
    Rule("sessions know no transport: device messages are plain values, the seam is "
         "interfaces",
         ("remotecomm.sessions",), TRANSPORTS, allowed=("remotecomm.relay.gateway",),
         transitive=True),
    Rule("the store knows no transport and no lifecycle: it returns rows",
         ("remotecomm.store",),
         TRANSPORTS + ("remotecomm.sessions", "remotecomm.accounts", "remotecomm.server"),
         transitive=True),
    Rule("the portal is a client of the manager's services, as the REST API is: it imports "
         "no store code and not the REST routes",
         ("remotecomm.portal",),
         ("remotecomm.store", "sqlalchemy", "alembic", "remotecomm.web", "remotecomm.server")),
    Rule("accounts import nothing from the server, the web or sessions",
         ("remotecomm.accounts",),
         ("remotecomm.server", "remotecomm.web", "remotecomm.sessions", "remotecomm.xmpp",
          "remotecomm.relay", "remotecomm.portal")),
    # -- two programs, two packages ------------------------------------------------------
    Rule("the technician's command imports no manager, store, accounts or admin code, and "
         "none of their libraries",
         ("remotecomm.terminal",),
         MANAGER_PACKAGES + SERVER_LIBRARIES + ("remotecomm.admin", "remotecomm.server",
                                                "remotecomm.device", "remotecomm.simulator",
                                                "remotecomm.relay.core", "remotecomm.relay.logs"),
         transitive=True),
    Rule("device-side programs import no manager, store, accounts or admin code: of the "
         "manager's vocabulary only the session and maintenance messages and the XMPP wire",
         ("remotecomm.device", "remotecomm.simulator"),
         MANAGER_PACKAGES + ("sqlalchemy", "alembic", "remotecomm.admin", "remotecomm.server",
                             "remotecomm.terminal", "remotecomm.relay.core",
                             "remotecomm.relay.logs"),
         allowed=("remotecomm.sessions.messages", "remotecomm.maintenance.messages",
                  "remotecomm.xmpp.payloads",
                  "remotecomm.xmpp.stream", "remotecomm.xmpp.compat"),
         transitive=True),
    Rule("the relay never parses the inner HTTP of a stream",
         ("remotecomm.relay",), ("remotecomm.streams", "h11")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in ROOT.rglob("*.py")}


MODULES = _all_modules()


def imports_of(module: str) -> set[str]:
    """Every module (ours: resolved to the module; others: as named) ``module`` imports."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    found.add(f"{base}.{alias.name}")
    return found


IMPORTS = {module: imports_of(module) for module in MODULES}


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def reachable(module: str) -> set[str]:
    """Everything ``module`` imports, directly or through modules of ours."""
    seen: set[str] = set()
    unvisited = [module]
    while unvisited:
        for name in IMPORTS[unvisited.pop()]:
            if name not in seen:
                seen.add(name)
                if name in MODULES:
                    unvisited.append(name)
    return seen


def broken(rule: Rule) -> list[str]:
    """``importer -> imported`` for every import that breaks ``rule``."""
    found = []
    for module in sorted(MODULES):
        if not _matches(module, rule.modules):
            continue
        names = reachable(module) if rule.transitive else IMPORTS[module]
        for name in sorted(names):
            if _matches(name, rule.forbidden) and not _matches(name, rule.allowed) \
                    and not _matches(name, rule.modules):
                found.append(f"{module} -> {name}")
    return found


def package_of(module: str) -> str:
    """``remotecomm.relay.core`` → ``remotecomm.relay``; top-level modules stand alone."""
    parts = module.split(".")
    return ".".join(parts[:2])


def package_cycles() -> list[list[str]]:
    """Groups of packages that import each other, directly or around a loop (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for module, names in IMPORTS.items():
        source = package_of(module)
        graph.setdefault(source, set())
        for name in names:
            if name in MODULES and package_of(name) != source:
                graph[source].add(package_of(name))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _identifier_patterns() -> dict[str, str]:
    from remotecomm import identifiers
    return {name: value for name, value in vars(identifiers).items()
            if name.isupper() and isinstance(value, str)}


def identifier_copies() -> list[str]:
    """Places outside identifiers.py that spell an identifier's shape again: a string equal
    to one of its patterns, or a module-level constant named like one."""
    patterns = _identifier_patterns()
    found = []
    for module, path in sorted(MODULES.items()):
        if module == "remotecomm.identifiers":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
                text = node.value.decode("latin-1") if isinstance(node.value, bytes) \
                    else node.value
                for name, pattern in patterns.items():
                    if text == pattern:
                        found.append(f"{module}:{node.lineno} spells {name}")
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in patterns:
                        found.append(f"{module}:{node.lineno} defines {target.id}")
    return found


class LayerTests(SynchronousTestCase):
    """Each rule of the table holds for the whole package."""

    def test_the_reader_sees_our_modules(self):
        """The checks read real code: the package's modules and their imports are found."""
        self.assertIn("remotecomm.relay.core", MODULES)
        self.assertIn("remotecomm.relay.envelope", IMPORTS["remotecomm.relay.core"])

    def test_a_broken_rule_is_reported(self):
        """The checker finds a violation when one exists (the rule table is not vacuous)."""
        self.assertEqual(broken(Rule("probe", ("remotecomm.relay.core",),
                                     ("remotecomm.relay.envelope",))),
                         ["remotecomm.relay.core -> remotecomm.relay.envelope"])

    def test_every_rule_holds(self):
        problems = {rule.why: broken(rule) for rule in RULES}
        self.assertEqual({why: found for why, found in problems.items() if found}, {})

    def test_no_package_imports_another_that_imports_it_back(self):
        self.assertEqual(package_cycles(), [])

    def test_the_cycle_finder_finds_a_cycle(self):
        """A probe loop is reported (the check is not vacuous)."""
        IMPORTS["remotecomm.store.engine"].add("remotecomm.sessions.rows")
        try:
            self.assertTrue(any({"remotecomm.sessions", "remotecomm.store"} <= set(cycle)
                                for cycle in package_cycles()))
        finally:
            IMPORTS["remotecomm.store.engine"].discard("remotecomm.sessions.rows")

    def test_identifier_shapes_are_defined_once(self):
        """Session ID, request ID, token, device ID … live in identifiers.py only."""
        self.assertEqual(identifier_copies(), [])

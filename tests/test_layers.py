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
                    "remotecomm.store", "remotecomm.xmpp")
RELAY_SEAM = ("remotecomm.relay.gateway", "remotecomm.relay.gateway_http")


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
    todo = [module]
    while todo:
        for name in IMPORTS[todo.pop()]:
            if name not in seen:
                seen.add(name)
                if name in MODULES:
                    todo.append(name)
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

"""Tests for remotecomm.messages: the catalogue is whole and has no key twice."""

import ast
import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import remotecomm
from remotecomm import messages

ROOT = Path(remotecomm.__file__).parent


class CatalogueTests(SynchronousTestCase):
    def test_no_key_is_written_twice(self):
        """A dict literal keeps the last of two equal keys without a word: a text would
        silently replace another."""
        tree = ast.parse((ROOT / "messages.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
                self.assertEqual(sorted({k for k in keys if keys.count(k) > 1}), [])

    def test_every_key_the_code_names_is_there(self):
        named = set()
        for path in ROOT.rglob("*.py"):
            named.update(re.findall(r'\btext\("([a-z0-9-]+)"', path.read_text()))
        self.assertGreater(len(named), 50)
        self.assertEqual(sorted(named - set(messages.CATALOGUE["en"])), [])

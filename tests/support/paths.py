"""Where things are, for tests anywhere in the tree (so moving a test file breaks no path)."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPOSITORY = TESTS.parent
#: objects captured from the real API server (tests/fixtures/capture_*.py)
FIXTURES = TESTS / "fixtures"
CONFIG_REPO_TEMPLATE = REPOSITORY / "config-repo-template"

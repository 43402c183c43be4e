"""Registers the fixtures of llm_fixtures.py (kept in a uniquely named module so that helpers can be
imported from it even when several services' tests run in one pytest session)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from llm_fixtures import llm, model_server  # noqa: F401

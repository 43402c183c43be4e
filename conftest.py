"""Repository-wide pytest configuration: shared test helpers and real local servers."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "tests" / "support"))

pytest_plugins = ["servers"]

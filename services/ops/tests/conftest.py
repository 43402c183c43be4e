"""Fixtures of the ops tests: one shared real system per module (ops_stack.py)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from ops_stack import Stack, start_stack

#: Import limits of the shared stack, low enough that a test's archive bomb trips them cheaply.
TEST_LIMITS = {"import_max_member_bytes": 8 * 1024 * 1024, "import_max_total_bytes": 32 * 1024 * 1024,
               "import_max_members": 5000}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, elasticsearch_url) -> Iterator[Stack]:
    """One stack per test module, with search on the test session's real Elasticsearch."""
    yield from start_stack(tmp_path_factory.mktemp("stack"), elasticsearch_url, **TEST_LIMITS)


@pytest.fixture
def ops_channel(stack) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(stack.ops_target)
    yield channel
    channel.close()

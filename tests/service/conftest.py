"""Service-layer tests: the real command service and policies on an in-memory log.

Everything here runs without a server, in milliseconds; what needs JetStream's own
semantics (OCC headers, dedupe, redelivery, two processes) is in tests/integration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.support.service_client import InProcessClient, memory_service


@pytest_asyncio.fixture
async def client() -> AsyncIterator[InProcessClient]:
    """A command service of its own for the test."""
    async with memory_service() as service:
        yield service


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_client() -> AsyncIterator[InProcessClient]:
    """One service shared by a module whose tests run in its loop (``loop_scope="module"``)."""
    async with memory_service() as service:
        yield service

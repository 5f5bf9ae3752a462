"""Usage records in tests (a pytest plugin, named in conftest.py; and the price fixture).

Usage records are written by a task of the event loop shortly after each upstream call ends
(usage/recording.py): in the test's loop for Django's test clients, in the live server's loop for
tests over HTTP. `_usage_writes_done` writes what is queued at the end of every test, before its
database is emptied, so that no record lands in the next test.

`seeded_prices` (used by the usage tests): tests on a transactional database end by emptying
every table, the price rows the data migration seeded included; it puts them back (and drops the
table the app keeps in memory) before each test.
"""

import asyncio
import importlib
from collections.abc import Iterator

import pytest
from django.apps import apps

from usage import recording
from usage.models import Price
from usage.prices import prices_forget


def settle_usage_writes(timeout: float = 10.0) -> None:
    """Write the usage records queued in any event loop (the test's, the live server's)."""
    for loop, writer in list(recording._writers.items()):
        if writer.task is None or loop.is_closed():
            continue
        if loop.is_running():
            if asyncio._get_running_loop() is not loop:  # another thread's (the live server)
                asyncio.run_coroutine_threadsafe(writer.flush(), loop).result(timeout)
        else:
            loop.run_until_complete(writer.flush())


@pytest.fixture(autouse=True)
def _usage_writes_done(request: pytest.FixtureRequest) -> Iterator[None]:
    # The database fixture first, so that it is torn down (emptied) after this has written.
    for database in ("transactional_db", "db"):
        if database in request.fixturenames:
            request.getfixturevalue(database)
            break
    yield
    settle_usage_writes()


@pytest.fixture
def seeded_prices(transactional_db) -> None:
    if not Price.objects.exists():
        importlib.import_module("usage.migrations.0001_initial").seed_prices(apps, None)
    prices_forget()

"""Database work from async code: off the event loop, on threads of its own, the connection given
back after each call."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

# PostgreSQL: calls at once per worker process (each holds a pooled connection while it runs).
POSTGRESQL_THREADS = 4


@cache
def _executor() -> ThreadPoolExecutor:
    """Not the process's shared sync thread, where requests are authenticated: these are writes, and
    a commit waits for the disk; queued there they would hold up every request. On SQLite one thread:
    SQLite takes one writer at a time anyway, and writers on several threads wait for each other in
    its busy handler, which sleeps 1 to 100 ms between tries (100 answers starting at once: a first
    byte p99 of 450 ms on 6 threads, measured). PostgreSQL commits in parallel."""
    sqlite = connections[DEFAULT_DB_ALIAS].vendor == "sqlite"
    return ThreadPoolExecutor(
        max_workers=1 if sqlite else POSTGRESQL_THREADS, thread_name_prefix="answers-db"
    )


async def run_db[T](fn: Callable[..., T], /, **kwargs: Any) -> T:
    """fn(**kwargs) on the executor above, then its connection given back as Django does when a
    request ends: a stream stays open for minutes and must not hold one meanwhile (each thread keeps
    its SQLite connection under CONN_MAX_AGE; PostgreSQL's goes back to its pool).

    The loop's run_in_executor, not asgiref's sync_to_async: these functions need none of what it
    carries over (context variables, thread-sensitive bookkeeping: connections are per thread), and
    it costs ~60 µs more per call (~140 against ~80 µs of CPU, measured); an answer makes three."""

    def call() -> T:
        try:
            return fn(**kwargs)
        finally:
            for connection in connections.all(initialized_only=True):
                if not connection.in_atomic_block:
                    connection.close_if_unusable_or_obsolete()

    return await asyncio.get_running_loop().run_in_executor(_executor(), call)

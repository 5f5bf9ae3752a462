#!/usr/bin/env python
"""`make soak`: many streams for minutes, with clients leaving and the upstream failing.

Two uvicorn workers (the production command: uvloop, httptools) on PostgreSQL when DATABASE_URL
points there (the database is created if missing; otherwise a temporary SQLite file, noted in the
report), the per-user stream cap shared through Redis when REDIS_URL is set. The fake upstream
(tests/fake_openai.py) runs in its own process and drops --fail-rate of its streams part-way.
--streams clients stream without pause, half to POST /api/chat/openai and half to
POST /v1/chat/completions, one user each; --disconnect-rate of the streams are cut by their client at
a random point. --warm-up seconds of that load come first (not counted), then --duration measured.

Prints: requests served by outcome, errors by kind, upstream streams left open after the run
(leaked: must be 0) and the app's connections, and memory (RSS of the app's process tree when the
measured run starts, every --sample-every seconds, and at the end). Exit status 1 if anything leaked or
a request failed in a way that was not injected.

    make soak                                         # 180 s, 200 streams
    make soak SOAK_ARGS="--duration 30 --streams 50"  # a short run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import psutil

from benchlib import (
    Proc,
    app_argv,
    app_environment,
    client_session,
    create_users,
    free_port,
    raise_nofile_limit,
    wait_http,
)

OPENAI_KEY = "sk-soak-0123456789abcdefghijklmnop"
MODEL = "gpt-4o-mini"
MIB = 1024 * 1024


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=180, help="seconds of load (default 180)")
    parser.add_argument("--streams", type=int, default=200, help="concurrent streams (default 200)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--disconnect-rate", type=float, default=0.10, help="streams cut by their client")
    parser.add_argument("--fail-rate", type=float, default=0.05, help="upstream streams dropped part-way")
    parser.add_argument("--chunks", type=int, default=40, help="content chunks per answer")
    parser.add_argument("--gap-ms", type=float, default=50, help="between chunks (default 50: a 2 s answer)")
    parser.add_argument(
        "--warm-up", type=float, default=20, help="seconds of load before measuring (default 20)"
    )
    parser.add_argument("--sample-every", type=float, default=30, help="seconds between memory samples")
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args()


# --------------------------------------------------------------------------- set-up


def database_url(tmp: Path) -> tuple[str, str]:
    """(DATABASE_URL, how to describe it); PostgreSQL databases are created when missing."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        import environ
        import psycopg
        from psycopg import sql

        config = environ.Env.db_url_config(url)
        admin = dict(
            host=config["HOST"] or None,
            port=config["PORT"] or None,
            user=config["USER"] or None,
            password=config["PASSWORD"] or None,
            dbname="postgres",
            autocommit=True,
        )
        with psycopg.connect(**{k: v for k, v in admin.items() if v is not None}) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
        return url, f"PostgreSQL ({config['NAME']} on {config['HOST'] or 'localhost'})"
    if url:
        return url, url.split(":", 1)[0]
    return (
        f"sqlite:///{tmp / 'soak.sqlite3'}",
        "SQLite (a temporary file; set DATABASE_URL=postgres://... for the PostgreSQL run)",
    )


# --------------------------------------------------------------------------- the load


class Soak:
    def __init__(self, args: argparse.Namespace, app_url: str, tokens: list[str]) -> None:
        self.args = args
        self.app_url = app_url
        self.tokens = tokens
        self.rng = random.Random(args.seed)
        self.outcomes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.answer_length = sum(len(f"tok{i} ") for i in range(args.chunks))
        self.answer_seconds = args.chunks * args.gap_ms / 1000
        self.chat_body = json.dumps(
            {
                "chatSettings": {"model": MODEL, "temperature": 0.5},
                "messages": [{"role": "user", "content": "Say hello"}],
            }
        ).encode()
        self.v1_body = json.dumps(
            {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Say hello"}]}
        ).encode()

    async def client(self, session: aiohttp.ClientSession, n: int, until: float) -> None:
        token = self.tokens[n]
        v1 = n % 2 == 1
        url = self.app_url + ("/v1/chat/completions" if v1 else "/api/chat/openai")
        headers = {"Authorization": f"Bearer {token}", **({"Content-Type": "application/json"} if v1 else {})}
        body = self.v1_body if v1 else self.chat_body
        while time.monotonic() < until:
            cut_after = (
                self.rng.uniform(0, self.answer_seconds)
                if self.rng.random() < self.args.disconnect_rate
                else None
            )
            await self.one(session, url, headers, body, v1, cut_after)

    async def one(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: dict[str, str],
        body: bytes,
        v1: bool,
        cut_after: float | None,
    ) -> None:
        path = "v1" if v1 else "api"
        received = b""
        try:
            async with asyncio.timeout(cut_after):
                async with session.post(url, data=body, headers=headers) as resp:
                    if resp.status != 200:
                        self.errors[f"{path}: HTTP {resp.status} {(await resp.read())[:100]!r}"] += 1
                        return
                    async for chunk in resp.content.iter_any():
                        received += chunk
        except TimeoutError:
            self.outcomes[f"{path}: cut by the client (by design)"] += 1
            return
        except aiohttp.ClientPayloadError:
            # /api/chat/openai ends a failed answer without its last chunk: the injected failures.
            self.outcomes[f"{path}: upstream failed, answer truncated (injected)"] += 1
            return
        except (aiohttp.ClientError, OSError) as exc:
            self.errors[f"{path}: {type(exc).__name__}"] += 1
            return
        if v1 and received.endswith(b"data: [DONE]\n\n"):
            self.outcomes[f"{path}: complete"] += 1
        elif v1 and b'"openai_interrupted"' in received[-400:]:
            self.outcomes[f"{path}: upstream failed, error event (injected)"] += 1
        elif not v1 and len(received) == self.answer_length:
            self.outcomes[f"{path}: complete"] += 1
        else:
            self.errors[f"{path}: wrong body ({len(received)} bytes, ends {received[-40:]!r})"] += 1


async def fake_stats(fake_port: int) -> dict[str, int]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{fake_port}/_fake/stats") as resp,
    ):
        return await resp.json()


def connections(app: Proc, port: int, *, remote: bool) -> int:
    """ESTABLISHED TCP connections of the app's processes: to `port` (remote) or on it (local)."""
    count = 0
    for proc in app.tree():
        try:
            for conn in proc.net_connections("tcp"):
                address = conn.raddr if remote else conn.laddr
                if address and address.port == port and conn.status == psutil.CONN_ESTABLISHED:
                    count += 1
        except psutil.NoSuchProcess:
            continue
    return count


async def main() -> int:
    args = parse_args()
    raise_nofile_limit()
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    fake_port, app_port = free_port(), free_port()
    db_url, db_note = database_url(tmp)
    env = app_environment(fake_port=fake_port, database_url=db_url)
    redis_note = (
        f"Redis ({env['REDIS_URL']})"
        if env.get("REDIS_URL")
        else "local memory (no REDIS_URL: the stream cap is counted per worker)"
    )
    users = args.streams
    print(
        f"soak: {args.duration:g} s (+{args.warm_up:g} s warm-up), {args.streams} concurrent streams "
        f"({args.chunks} chunks x {args.gap_ms:g} ms), {args.workers} workers, "
        f"{args.disconnect_rate:.0%} cut by clients, {args.fail_rate:.0%} failed upstream\n"
        f"  database: {db_note}\n  stream cap: {redis_note}",
        flush=True,
    )
    tokens = create_users(env, users, OPENAI_KEY)
    if env.get("REDIS_URL"):  # slots an earlier run's workers may have left (they expire, but later)
        import redis

        client = redis.Redis.from_url(env["REDIS_URL"])
        stale = list(client.scan_iter("*streams:*"))
        if stale:
            client.delete(*stale)

    fake = Proc(
        "fake-openai",
        [
            sys.executable,
            "tests/fake_openai.py",
            "--port",
            str(fake_port),
            "--chunks",
            str(args.chunks),
            "--gap-ms",
            str(args.gap_ms),
            "--fail-rate",
            str(args.fail_rate),
        ],
        env=env,
        log_dir=tmp,
    )
    app = Proc("app", app_argv(port=app_port, workers=args.workers), env=env, log_dir=tmp)
    app_url = f"http://127.0.0.1:{app_port}"
    try:
        await wait_http(app_url + "/api/chat/openai", app)
        await wait_http(f"http://127.0.0.1:{fake_port}/_fake/stats", fake)
        while len([p for p in app.process.children() if p.is_running()]) < args.workers:
            await asyncio.sleep(0.1)
        app.freeze_tree()
        soak = Soak(args, app_url, tokens)
        samples: list[tuple[float, int]] = []
        measuring = asyncio.Event()
        warm_until = time.monotonic() + args.warm_up
        until = warm_until + args.duration
        started = warm_until

        async def measure() -> None:
            # The counters start when the warm-up ends: imports, pools, connections and the memory
            # of full load are in the figures' starting point, not in their growth.
            nonlocal before, started
            await asyncio.sleep(max(0.0, warm_until - time.monotonic()))
            soak.outcomes.clear()
            soak.errors.clear()
            before = await fake_stats(fake_port)
            started = time.monotonic()
            measuring.set()
            while True:
                samples.append((time.monotonic() - started, app.rss_bytes()))
                await asyncio.sleep(args.sample_every)

        before: dict[str, int] = {}
        sampler = asyncio.create_task(measure())
        async with client_session() as session:
            await asyncio.gather(*(soak.client(session, n, until) for n in range(args.streams)))
        sampler.cancel()
        elapsed = time.monotonic() - started
        assert measuring.is_set()
        rss_start = samples[0][1]

        await asyncio.sleep(2)  # let the workers finish closing what the last clients left
        after = await fake_stats(fake_port)
        rss_end = app.rss_bytes()
        leaked = after["open_streams"]
        app_clients = connections(app, app_port, remote=False)
        app_upstream = connections(app, fake_port, remote=True)
        app.check_alive()
    finally:
        app.stop()
        fake.stop()

    served = sum(soak.outcomes.values()) + sum(soak.errors.values())
    upstream = {
        k: after[k] - before[k]
        for k in ("streams_started", "streams_completed", "streams_cancelled", "streams_aborted")
    }
    print(f"\nrequests served: {served} in {elapsed:.0f} s ({served / elapsed:.1f}/s)")
    for outcome, count in sorted(soak.outcomes.items()):
        print(f"  {count:7d}  {outcome}")
    print("errors by kind:" + ("" if soak.errors else " none"))
    for kind, count in soak.errors.most_common():
        print(f"  {count:7d}  {kind}")
    print(
        f"upstream (fake): {upstream['streams_started']} streams started, {upstream['streams_completed']} "
        f"completed, {upstream['streams_cancelled']} cancelled by the app, {upstream['streams_aborted']} "
        f"dropped on purpose"
    )
    print(f"leaked upstream streams (open at the fake after the run): {leaked}")
    print(
        f"app connections after the run: {app_clients} from clients, {app_upstream} to the upstream "
        f"(idle keep-alive in the pool)"
    )
    growth = rss_end - rss_start
    print(
        f"memory (RSS of the app's {len(app.tree())} processes, after {args.warm_up:g} s of warm-up "
        f"at full load): start {rss_start / MIB:.1f} MiB, end "
        f"{rss_end / MIB:.1f} MiB, growth {growth / MIB:+.1f} MiB ({growth / rss_start:+.1%})"
    )
    print("  samples: " + ", ".join(f"{t:.0f} s {rss / MIB:.0f} MiB" for t, rss in samples))
    print(f"logs: {tmp}")
    ok = leaked == 0 and not soak.errors and app_clients == 0
    print("soak: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Helpers for stream_bench.py: the processes under test, their CPU and memory, and the stream client.

The client is deliberately thin (aiohttp, raw reads, no SSE parsing) so that the numbers are the
server's, not the client's: per read it only counts bytes and keeps the last few for the end check.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- processes


def raise_nofile_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by the servers we start); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _schedstat_seconds(pid: int) -> float:
    # /proc/PID/stat counts in clock ticks (10 ms): too coarse for a few streams. schedstat's first
    # field is the thread's time on CPU in ns. (Threads that already exited are not counted: the
    # servers measured here keep their threads.)
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A server we started, with its whole process tree measured (uvicorn workers are children)."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{int(time.time() * 1000)}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(argv, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.process = psutil.Process(self.popen.pid)
        self._tree: list[psutil.Process] | None = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")

    def freeze_tree(self) -> None:
        """Remember the processes to measure (call once the workers are up)."""
        self._tree = [self.process, *self.process.children(recursive=True)]

    def tree(self) -> list[psutil.Process]:
        return (
            self._tree if self._tree is not None else [self.process, *self.process.children(recursive=True)]
        )

    def cpu_seconds(self) -> float:
        """CPU time of the tree: nanosecond schedstat of every thread where Linux has it, else psutil."""
        total = 0.0
        for proc in self.tree():
            try:
                total += _schedstat_seconds(proc.pid)
            except OSError:
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.tree():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()


def start_fake(*, port: int, chunks: int, gap_ms: float, env: dict[str, str], log_dir: Path) -> Proc:
    argv = [
        sys.executable,
        "tests/fake_openai.py",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chunks",
        str(chunks),
        "--gap-ms",
        str(gap_ms),
    ]
    proc = Proc("fake-openai", argv, env=env, log_dir=log_dir)
    deadline = time.monotonic() + 20
    while b"listening on" not in proc.log_path.read_bytes():
        proc.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fake upstream did not start:\n{proc.log_tail()}")
        time.sleep(0.02)
    proc.freeze_tree()
    return proc


def app_environment(*, fake_port: int, database_url: str) -> dict[str, str]:
    """The app's environment for a run: production settings, the fake upstream, a fresh key ring."""
    import secrets

    from cryptography.fernet import Fernet

    env = dict(os.environ)
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PROFILE_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        OPENAI_BASE_URL=f"http://127.0.0.1:{fake_port}/v1",
        LOG_LEVEL="WARNING",
        # Plain HTTP on loopback, as behind a proxy that terminates TLS.
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
    )
    return env


def create_users(env: dict[str, str], count: int, openai_key: str) -> list[str]:
    """Migrate the run's database and make `count` users with a stored key; their API tokens."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO, env=env, check=True
    )
    out = subprocess.run(
        [sys.executable, "bench/bench_setup.py", str(count), openai_key],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.split()


def app_argv(*, port: int, workers: int) -> list[str]:
    """The production command (as `make run`): uvicorn, uvloop, httptools, no access log."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "chatproject.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--workers",
        str(workers),
        "--no-access-log",
    ]


async def wait_http(url: str, proc: Proc, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            proc.check_alive()
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    await resp.read()
                    return
            except (TimeoutError, aiohttp.ClientError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{proc.name} did not answer at {url}:\n{proc.log_tail()}") from None
                await asyncio.sleep(0.05)


class Sampler:
    """RSS of a process tree every `interval` s, with how many streams the client had open then."""

    def __init__(self, proc: Proc | None, open_streams: Callable[[], int], interval: float = 0.05) -> None:
        self.proc, self.open_streams, self.interval = proc, open_streams, interval
        self.samples: list[tuple[int, int]] = []  # (rss bytes, open streams)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.samples.append((self.proc.rss_bytes(), self.open_streams()))
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self.proc is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def peak(self) -> int | None:
        return max((rss for rss, _ in self.samples), default=None)

    def peak_with_open(self, n: int) -> int | None:
        """Highest RSS sampled while all n streams were open (None if never sampled then)."""
        return max((rss for rss, count in self.samples if count >= n), default=None)


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class Target:
    """One path under test: where to POST, what, and how a complete body ends."""

    name: str
    url: str
    headers: list[dict[str, str]]  # stream i sends headers[i % len(headers)] (one user per stream)
    body: bytes
    expect_tail: bytes | None = None  # the body must end with this...
    expect_length: int | None = None  # ...or be exactly this long...
    expect_near_end: bytes | None = None  # ...or hold this in its last TAIL_NEAR_END bytes
    urls: list[str] | None = None  # stream i posts to urls[i % len(urls)] instead of url (its user's)

    def url_for(self, index: int) -> str:
        return self.urls[index % len(self.urls)] if self.urls else self.url


TAIL_NEAR_END = 512  # the conversation path's `done` event names its status ~300 bytes from the end


@dataclass
class StreamResult:
    ok: bool = False
    error: str = ""
    first_byte: float = math.nan  # seconds from sending the request to the first body byte
    total: float = math.nan  # ... to the end of the body
    reads: int = 0  # non-empty reads: a relay that batches chunks shows fewer
    nbytes: int = 0


@dataclass
class OpenCounter:
    value: int = 0
    peak: int = 0

    def up(self) -> None:
        self.value += 1
        self.peak = max(self.peak, self.value)

    def down(self) -> None:
        self.value -= 1


def client_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60),
        auto_decompress=False,
    )


async def one_stream(
    session: aiohttp.ClientSession,
    target: Target,
    index: int = 0,
    *,
    first_byte_only: bool = False,
    counter: OpenCounter | None = None,
) -> StreamResult:
    result = StreamResult()
    clock = time.perf_counter
    start = clock()
    opened = False
    try:
        async with session.post(
            target.url_for(index), data=target.body, headers=target.headers[index % len(target.headers)]
        ) as resp:
            if counter is not None:
                counter.up()
                opened = True
            if resp.status != 200:
                result.error = f"HTTP {resp.status}: {(await resp.read())[:200]!r}"
                return result
            tail = b""
            keep = TAIL_NEAR_END if target.expect_near_end is not None else 32
            async for chunk in resp.content.iter_any():
                if not result.reads:
                    result.first_byte = clock() - start
                    if first_byte_only:
                        resp.close()  # the browser's Stop button: the server must cancel upstream
                        result.ok = True
                        return result
                result.reads += 1
                result.nbytes += len(chunk)
                tail = (tail + chunk)[-keep:]
            result.total = clock() - start
            if target.expect_tail is not None and not tail.endswith(target.expect_tail):
                result.error = f"incomplete body (ends {tail!r})"
            elif target.expect_length is not None and result.nbytes != target.expect_length:
                result.error = f"incomplete body ({result.nbytes} of {target.expect_length} bytes)"
            elif target.expect_near_end is not None and target.expect_near_end not in tail:
                result.error = f"incomplete body (ends {tail[-120:]!r})"
            else:
                result.ok = True
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        if opened and counter is not None:
            counter.down()
    return result


# --------------------------------------------------------------------------- figures


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest); nan when empty."""
    clean = sorted(v for v in values if not math.isnan(v))
    if not clean:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(clean)))
    return clean[rank - 1]


def machine_description() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, "
        f"Python {sys.version.split()[0]}, {package_versions()}"
    )


def package_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("django", "uvicorn", "uvloop", "httptools", "aiohttp", "openai"):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{name} {version(name)}")
    return ", ".join(parts)


__all__ = [
    "OpenCounter",
    "Proc",
    "Sampler",
    "StreamResult",
    "Target",
    "app_argv",
    "client_session",
    "free_port",
    "machine_description",
    "one_stream",
    "percentile",
    "raise_nofile_limit",
    "start_fake",
    "wait_http",
]

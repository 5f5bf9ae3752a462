#!/usr/bin/env python
"""`make bench`: streaming cost of the relay, next to the cost of the stream itself.

Starts the fake OpenAI server (tests/fake_openai.py, uvloop) and the app under its production command
(uvicorn, uvloop, httptools, `--workers W`, no access log; DEBUG off, a fresh migrated SQLite database
or DATABASE_URL), then streams over real HTTP, for each path side by side:

  direct  POST /v1/chat/completions on the fake upstream (the floor)
  api     POST /api/chat/openai                      (Token auth; body: the deltas as plain text)
  v1      POST /v1/chat/completions on the app, stream=true (Bearer token; SSE passed through)
  conversation  POST /api/conversations/{id}/messages/ (Token auth; SSE events; the question and the
          answer saved as it streams): one conversation per user, made before the run, which each of
          its streams continues (so its history grows by a question and an answer per stream)

Sections (each with a fresh fake upstream; each relayed path with a freshly started, warmed-up app):
  single      1 stream at a time: first-byte p50/p99 over --single-requests requests (closed after the
              first byte), then --single-full whole streams (total time, reads per stream, CPU)
  concurrent  --streams streams at once, --chunks chunks --gap-ms apart (default 100 x 200 x 20 ms)
  capacity    --capacity-streams at once (default 1,000 x 50 chunks x 200 ms): errors and memory

CPU per chunk = CPU time (user+system) of a server's whole process tree over the measured phase,
divided by the upstream events streamed (chunks + 3: the role event, the content chunks, the finish
event and [DONE]). The upstream's figure is the fake's own CPU over the same phase, so each ratio
compares two numbers from the same run. RSS per open stream = (highest RSS sampled while all streams
were open - RSS of the warmed-up idle app) / streams.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp

from benchlib import (
    REPO,
    OpenCounter,
    Proc,
    Sampler,
    StreamResult,
    Target,
    app_argv,
    app_environment,
    client_session,
    create_users,
    free_port,
    machine_description,
    one_stream,
    percentile,
    raise_nofile_limit,
    start_fake,
    wait_http,
)

PATHS = ("direct", "api", "v1", "conversation")
LABELS = {
    "direct": "direct (fake upstream)",
    "api": "POST /api/chat/openai",
    "v1": "POST /v1/chat/completions",
    "conversation": "POST /api/conversations/{id}/messages/",
}
BENCH_OPENAI_KEY = "sk-bench-0123456789abcdefghijklmnop"
MODEL = "gpt-4o-mini"
KIB = 1024
MIB = 1024 * 1024


@dataclass
class Section:
    name: str
    streams: int
    chunks: int
    gap_ms: float

    @property
    def events(self) -> int:
        return self.chunks + 3  # role event, content chunks, finish event, [DONE]


@dataclass
class Row:
    section: str
    path: str
    streams: int
    available: bool = True
    note: str = ""
    errors: int = 0
    error_example: str = ""
    first_byte_p50: float = math.nan
    first_byte_p99: float = math.nan
    total_p50: float = math.nan
    total_p99: float = math.nan
    reads_p50: float = math.nan
    server_us_per_request: float = math.nan  # single section: CPU of one request opened, first byte, closed
    upstream_us_per_request: float = math.nan
    server_us_per_chunk: float = math.nan
    upstream_us_per_chunk: float = math.nan
    client_us_per_chunk: float = math.nan
    idle_rss: float = math.nan
    peak_rss: float = math.nan
    rss_per_stream: float = math.nan

    @property
    def ratio(self) -> float:
        if not self.upstream_us_per_chunk:
            return math.nan
        return self.server_us_per_chunk / self.upstream_us_per_chunk


@dataclass
class Check:
    what: str
    figure: str
    target: str
    passed: bool | None  # None: not measured in this run


@dataclass
class Report:
    machine: str
    config: str
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


# --------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="stream-bench-"))
        self.fake_port = free_port()
        self.app_port = free_port()
        self.fake: Proc | None = None
        self.app: Proc | None = None
        self.tokens: list[str] = []
        self.conversation_urls: list[str] = []  # one per token, made for each conversation run
        self.v1_available: bool | None = None
        self.env = app_environment(
            fake_port=self.fake_port,
            database_url=self.args.database_url or f"sqlite:///{self.tmp / 'bench.sqlite3'}",
        )

    def setup_database(self) -> None:
        users = max(self.args.streams, self.args.capacity_streams, 10 * self.args.workers, 1)
        self.tokens = create_users(self.env, users, BENCH_OPENAI_KEY)

    # ----------------------------------------------------------------- targets

    def targets(self, section: Section) -> dict[str, Target]:
        content_length = sum(len(f"tok{i} ") for i in range(section.chunks))
        openai_body = json.dumps(
            {
                "model": MODEL,
                "stream": True,
                "messages": [
                    {"role": "system", "content": "Today is Saturday."},
                    {"role": "user", "content": "Say hello"},
                ],
            }
        ).encode()
        chat_body = json.dumps(
            {
                "chatSettings": {
                    "model": MODEL,
                    "temperature": 0.5,
                    "prompt": "You are a friendly, helpful AI assistant.",
                    "contextLength": 4096,
                    "includeProfileContext": True,
                    "includeWorkspaceInstructions": True,
                    "embeddingsProvider": "openai",
                },
                "messages": [
                    {"role": "system", "content": "Today is Saturday."},
                    {"role": "user", "content": "Say hello"},
                ],
            }
        ).encode()
        app = f"http://127.0.0.1:{self.app_port}"
        json_headers = {"Content-Type": "application/json"}
        return {
            "direct": Target(
                "direct",
                f"http://127.0.0.1:{self.fake_port}/v1/chat/completions",
                [{**json_headers, "Authorization": f"Bearer {BENCH_OPENAI_KEY}"}],
                openai_body,
                expect_tail=b"data: [DONE]\n\n",
            ),
            # chatbot-ui's browser sends no Content-Type.
            "api": Target(
                "api",
                f"{app}/api/chat/openai",
                [{"Authorization": f"Token {t}"} for t in self.tokens],
                chat_body,
                expect_length=content_length,
            ),
            "v1": Target(
                "v1",
                f"{app}/v1/chat/completions",
                [{**json_headers, "Authorization": f"Bearer {t}"} for t in self.tokens],
                openai_body,
                expect_tail=b"[DONE]\n\n",
            ),
            "conversation": Target(
                "conversation",
                f"{app}/api/conversations/",
                [{**json_headers, "Authorization": f"Token {t}"} for t in self.tokens],
                json.dumps({"content": "Say hello", "model": MODEL, "temperature": 0.5}).encode(),
                expect_near_end=b'"status":"complete"',
                urls=self.conversation_urls,
            ),
        }

    # ----------------------------------------------------------------- processes

    async def start_app(self) -> Proc:
        app = Proc(
            "app", app_argv(port=self.app_port, workers=self.args.workers), env=self.env, log_dir=self.tmp
        )
        try:
            await wait_http(f"http://127.0.0.1:{self.app_port}/api/chat/openai", app)
            deadline = time.monotonic() + 30
            while self.args.workers > 1 and len(app.process.children(recursive=True)) < self.args.workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start {self.args.workers} workers")
                await asyncio.sleep(0.1)
            app.freeze_tree()
        except BaseException:
            app.stop()
            raise
        return app

    async def create_conversations(self, session: aiohttp.ClientSession) -> None:
        """A fresh conversation per user (its system prompt the other paths' system message). Titled:
        an untitled one's first answer also asks the upstream for a title, once per conversation."""
        app = f"http://127.0.0.1:{self.app_port}"
        body = json.dumps({"title": "Bench", "system_prompt": "Today is Saturday.", "model": MODEL}).encode()

        async def create(token: str) -> str:
            headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
            async with session.post(f"{app}/api/conversations/", data=body, headers=headers) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"could not create a conversation: {resp.status} {await resp.text()}")
                return f"{app}/api/conversations/{(await resp.json())['id']}/messages/"

        # One at a time: the REST views are sync, and concurrent writes to SQLite would fail ("locked").
        self.conversation_urls[:] = [await create(token) for token in self.tokens]

    async def probe_v1(self, session: aiohttp.ClientSession) -> bool:
        # Without credentials an existing route answers 401; a missing one answers 404.
        async with session.post(f"http://127.0.0.1:{self.app_port}/v1/chat/completions", data=b"{}") as resp:
            await resp.read()
            return resp.status != 404

    async def warm_up(self, session: aiohttp.ClientSession, target: Target) -> None:
        """Imports, the pooled client, DB connections: paid once per process, not per stream."""
        for i in range(5):
            await one_stream(session, target, i, first_byte_only=True)
        for _ in range(2):
            await asyncio.gather(
                *(one_stream(session, target, i, first_byte_only=True) for i in range(10 * self.args.workers))
            )
        await asyncio.sleep(0.5)

    # ----------------------------------------------------------------- sections

    async def run(self, report: Report) -> None:
        args = self.args
        sections = []
        if "single" in args.sections:
            sections.append(Section("single", 1, args.single_chunks, args.gap_ms))
        if "concurrent" in args.sections:
            sections.append(Section("concurrent", args.streams, args.chunks, args.gap_ms))
        if "capacity" in args.sections:
            sections.append(
                Section("capacity", args.capacity_streams, args.capacity_chunks, args.capacity_gap_ms)
            )
        for section in sections:
            self.fake = start_fake(
                port=self.fake_port,
                chunks=section.chunks,
                gap_ms=section.gap_ms,
                env=self.env,
                log_dir=self.tmp,
            )
            try:
                for path in args.paths:
                    print(f"  {section.name}: {LABELS[path]} ...", file=sys.stderr, flush=True)
                    row = await self.run_path(section, path)
                    report.rows.append(row)
            finally:
                self.fake.stop()
                self.fake = None

    async def run_path(self, section: Section, path: str) -> Row:
        row = Row(section.name, path, section.streams)
        async with client_session() as session:
            if path != "direct":
                self.app = await self.start_app()
            try:
                if path == "conversation":
                    await self.create_conversations(session)
                target = self.targets(section)[path]
                if path == "v1":
                    self.v1_available = await self.probe_v1(session)
                    if not self.v1_available:
                        row.available = False
                        row.note = "not available: the app has no /v1/chat/completions route"
                        return row
                await self.warm_up(session, target)
                if section.name == "single":
                    await self.measure_single(session, section, target, row)
                else:
                    await self.measure_concurrent(session, section, target, row)
            finally:
                if self.app is not None:
                    self.app.stop()
                    self.app = None
        return row

    def _cpu(self) -> tuple[float, float, float]:
        own = os.times()
        return (
            self.app.cpu_seconds() if self.app else math.nan,
            self.fake.cpu_seconds(),
            own.user + own.system,
        )

    def _per_chunk(
        self, row: Row, before: tuple[float, float, float], after: tuple[float, float, float], chunks: int
    ) -> None:
        if chunks <= 0:
            return
        server, upstream, client = (1e6 * (b - a) / chunks for a, b in zip(before, after, strict=True))
        row.server_us_per_chunk, row.upstream_us_per_chunk, row.client_us_per_chunk = server, upstream, client

    def _timings(self, row: Row, results: list[StreamResult]) -> None:
        failed = [r for r in results if not r.ok]
        row.errors = len(failed)
        row.error_example = failed[0].error if failed else ""
        ok = [r for r in results if r.ok]
        row.total_p50 = percentile([r.total for r in ok], 50)
        row.total_p99 = percentile([r.total for r in ok], 99)
        row.reads_p50 = percentile([float(r.reads) for r in ok], 50)

    async def measure_single(
        self, session: aiohttp.ClientSession, section: Section, target: Target, row: Row
    ) -> None:
        first: list[StreamResult] = []
        profiler = self.start_profiler(section, row.path)
        before = self._cpu()
        for i in range(self.args.single_requests):
            first.append(await one_stream(session, target, i, first_byte_only=True))
            await asyncio.sleep(0.02)  # let the server finish cancelling the last one
        await asyncio.sleep(0.1)
        after = self._cpu()
        self.stop_profiler(profiler, row.path)
        n = len(first)
        row.server_us_per_request = 1e6 * (after[0] - before[0]) / n
        row.upstream_us_per_request = 1e6 * (after[1] - before[1]) / n
        if self.app is not None:
            row.idle_rss = self.app.rss_bytes()
        before = self._cpu()
        full = [await one_stream(session, target, i) for i in range(self.args.single_full)]
        await asyncio.sleep(0.1)
        after = self._cpu()
        self._timings(row, full)
        row.errors += sum(not r.ok for r in first)
        row.first_byte_p50 = percentile([r.first_byte for r in first if r.ok], 50)
        row.first_byte_p99 = percentile([r.first_byte for r in first if r.ok], 99)
        self._per_chunk(row, before, after, section.events * sum(r.ok for r in full))

    async def measure_concurrent(
        self, session: aiohttp.ClientSession, section: Section, target: Target, row: Row
    ) -> None:
        counter = OpenCounter()
        sampler = Sampler(self.app, lambda: counter.value)
        if self.app is not None:
            row.idle_rss = self.app.rss_bytes()
        profiler = self.start_profiler(section, row.path)
        before = self._cpu()
        sampler.start()
        results = await asyncio.gather(
            *(one_stream(session, target, i, counter=counter) for i in range(section.streams))
        )
        await asyncio.sleep(0.2)  # responses end before the server has finished its bookkeeping
        after = self._cpu()
        await sampler.stop()
        self.stop_profiler(profiler, row.path)
        self._timings(row, results)
        ok = [r for r in results if r.ok]
        row.first_byte_p50 = percentile([r.first_byte for r in ok], 50)
        row.first_byte_p99 = percentile([r.first_byte for r in ok], 99)
        self._per_chunk(row, before, after, section.events * len(ok))
        if self.app is not None:
            row.peak_rss = float(sampler.peak() or math.nan)
            all_open = sampler.peak_with_open(section.streams)
            if all_open is not None:
                row.rss_per_stream = (all_open - row.idle_rss) / section.streams
            else:
                row.note = f"never sampled with all {section.streams} streams open (peak {counter.peak})"

    # ----------------------------------------------------------------- profiling

    def start_profiler(self, section: Section, path: str) -> subprocess.Popen[bytes] | None:
        if (
            section.name not in self.args.profile_sections
            or path not in self.args.profile
            or self.app is None
        ):
            return None
        out = self.profile_output(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        py_spy = Path(sys.executable).with_name("py-spy")
        # Non-blocking sampling of every worker, only the thread holding the GIL: where the CPU time goes.
        argv = [
            str(py_spy),
            "record",
            "--pid",
            str(self.app.process.pid),
            "--subprocesses",
            "--nonblocking",
            "--gil",
            "--full-filenames",
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(out),
        ]
        profiler = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # py-spy attaches
        return profiler

    def stop_profiler(self, profiler: subprocess.Popen[bytes] | None, path: str) -> None:
        if profiler is None:
            return
        profiler.send_signal(signal.SIGINT)
        _, err = profiler.communicate(timeout=60)
        out = self.profile_output(path)
        if not out.exists():
            print(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
            return
        from profile_summary import summarise

        print(f"\n### Profile of {LABELS[path]} (py-spy, {out})\n", flush=True)
        print(summarise(out.read_text(), top=self.args.profile_top))

    def profile_output(self, path: str) -> Path:
        return REPO / "bench" / "results" / f"profile-{'-'.join(self.args.profile_sections)}-{path}.txt"


# --------------------------------------------------------------------------- the table


def ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def us(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.0f} µs"


def mib(value: float) -> str:
    return "—" if math.isnan(value) else f"{value / MIB:.0f} MiB"


def kib(value: float) -> str:
    return "—" if math.isnan(value) else f"{value / KIB:.1f} KiB"


def render_table(rows: list[Row]) -> str:
    head = (
        "| section | path | streams | errors | first byte p50 | p99 | total p50 | p99 | reads/stream "
        "| server CPU/request | server CPU/chunk | upstream CPU/chunk | ratio | idle RSS | peak RSS "
        "| RSS/open stream |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if not r.available:
            lines.append(
                f"| {r.section} | {LABELS[r.path]} | {r.streams} | {r.note} |" + " |" * (head.count("|") - 5)
            )
            continue
        ratio = "—" if r.path == "direct" or math.isnan(r.server_us_per_chunk) else f"{r.ratio:.2f}×"
        server = "—" if r.path == "direct" else us(r.server_us_per_chunk)
        reads = "—" if math.isnan(r.reads_p50) else f"{r.reads_p50:.0f}"
        per_request = us(r.server_us_per_request)
        if r.path == "direct":
            per_request = (
                "—"
                if math.isnan(r.upstream_us_per_request)
                else f"{us(r.upstream_us_per_request)} (upstream)"
            )
        lines.append(
            f"| {r.section} | {LABELS[r.path]} | {r.streams} | {r.errors} | {ms(r.first_byte_p50)} "
            f"| {ms(r.first_byte_p99)} | {ms(r.total_p50)} | {ms(r.total_p99)} | {reads} "
            f"| {per_request} | {server} "
            f"| {us(r.upstream_us_per_chunk)} | {ratio} | {mib(r.idle_rss)} | {mib(r.peak_rss)} "
            f"| {kib(r.rss_per_stream)} |"
        )
    return "\n".join(lines)


def evaluate(report: Report, args: argparse.Namespace) -> None:
    rows = {(r.section, r.path): r for r in report.rows if r.available}
    checks = report.checks

    def add(what: str, figure: str, target: str, passed: bool | None) -> None:
        checks.append(Check(what, figure, target, passed))

    limits = {"api": 3.0, "v1": 2.0}  # the conversation path's goals are relative to api (below)
    for path in ("api", "v1", "conversation"):
        name = LABELS[path]
        conc = rows.get(("concurrent", path))
        if path in limits and conc and not math.isnan(conc.server_us_per_chunk):
            add(
                f"server CPU per relayed chunk, {name} ({conc.streams} streams)",
                f"{conc.server_us_per_chunk:.0f} µs vs upstream {conc.upstream_us_per_chunk:.0f} µs "
                f"= {conc.ratio:.2f}×",
                f"≤ {limits[path]:.0f}×",
                conc.ratio <= limits[path],
            )
        elif path in limits:
            add(f"server CPU per relayed chunk, {name}", "not measured", f"≤ {limits[path]:.0f}×", None)

        single, direct1 = rows.get(("single", path)), rows.get(("single", "direct"))
        if single and direct1:
            extra = single.first_byte_p50 - direct1.first_byte_p50
            add(
                f"first byte p50 with 1 stream, {name}",
                f"{ms(single.first_byte_p50)} (direct {ms(direct1.first_byte_p50)}, +{extra * 1000:.1f} ms)",
                "≤ direct + 10 ms",
                extra <= 0.010,
            )
        else:
            add(f"first byte p50 with 1 stream, {name}", "not measured", "≤ direct + 10 ms", None)

        if conc:
            add(
                f"first byte p99 at {conc.streams} streams, {name}",
                ms(conc.first_byte_p99),
                "< 100 ms",
                conc.first_byte_p99 < 0.100 and conc.errors == 0,
            )
        direct = rows.get(("concurrent", "direct"))
        if conc and direct:
            r50, r99 = conc.total_p50 / direct.total_p50, conc.total_p99 / direct.total_p99
            add(
                f"total time at {conc.streams} streams, {name}",
                f"p50 {ms(conc.total_p50)} ({r50:.3f}×), p99 {ms(conc.total_p99)} ({r99:.3f}×) of direct",
                "≤ 1.1× direct",
                max(r50, r99) <= 1.1 and conc.errors == 0,
            )

        cap = rows.get(("capacity", path))
        if cap:
            add(
                f"{cap.streams} streams, {name}: errors",
                f"{cap.errors}" + (f" ({cap.error_example})" if cap.errors else ""),
                "0",
                cap.errors == 0,
            )
            add(
                f"{cap.streams} streams, {name}: RSS per open stream above idle",
                kib(cap.rss_per_stream),
                "≤ 64 KiB",
                cap.rss_per_stream <= 64 * KIB if not math.isnan(cap.rss_per_stream) else None,
            )
        else:
            add(
                f"capacity ({args.capacity_streams} streams), {name}",
                "not measured",
                "0 errors, ≤ 64 KiB/stream",
                None,
            )

        if single:
            add(
                f"no chunk held back, {name}: reads per stream with 1 stream",
                f"{single.reads_p50:.0f} reads for {args.single_chunks} chunks sent {args.gap_ms:g} ms apart",
                f"≥ {args.single_chunks - 1}",
                single.reads_p50 >= args.single_chunks - 1,
            )
    _conversation_checks(rows, add)
    v1_rows = [r for r in report.rows if r.path == "v1"]
    if v1_rows and not any(r.available for r in v1_rows):
        for check in checks:
            if LABELS["v1"] in check.what:
                check.figure = "not available (no /v1/chat/completions route yet)"


def _conversation_checks(
    rows: dict[tuple[str, str], Row], add: Callable[[str, str, str, bool | None], None]
) -> None:
    """Saving the conversation costs at most 1.2x the CPU per relayed chunk of POST /api/chat/openai,
    and at most 1.5 ms more per request (its database writes)."""
    name, api = LABELS["conversation"], LABELS["api"]
    conc, conc_api = rows.get(("concurrent", "conversation")), rows.get(("concurrent", "api"))
    if conc and conc_api and not math.isnan(conc.server_us_per_chunk):
        # Each path's own ratio to the upstream's CPU over the same phase: the two phases run a minute
        # apart, and other work on the machine moves raw microseconds by tens of percent between them.
        ratio = conc.ratio / conc_api.ratio
        raw = conc.server_us_per_chunk / conc_api.server_us_per_chunk
        add(
            f"server CPU per relayed chunk, {name} vs {api} ({conc.streams} streams)",
            f"{conc.ratio:.2f}× vs {conc_api.ratio:.2f}× the upstream's = {ratio:.2f}× "
            f"(raw: {conc.server_us_per_chunk:.0f} µs vs {conc_api.server_us_per_chunk:.0f} µs = {raw:.2f}×)",
            "≤ 1.2×",
            ratio <= 1.2,
        )
    else:
        add(f"server CPU per relayed chunk, {name} vs {api}", "not measured", "≤ 1.2×", None)
    single, single_api = rows.get(("single", "conversation")), rows.get(("single", "api"))
    if single and single_api and not math.isnan(single.server_us_per_request):
        extra = single.server_us_per_request - single_api.server_us_per_request
        add(
            f"server CPU per request (opened, first byte, closed), {name} vs {api}",
            f"{us(single.server_us_per_request)} vs {us(single_api.server_us_per_request)} = {extra:+.0f} µs",
            "≤ +1,500 µs",
            extra <= 1500,
        )
    else:
        add(f"server CPU per request, {name} vs {api}", "not measured", "≤ +1,500 µs", None)


def render_checks(checks: list[Check]) -> str:
    lines = ["| target | figure | goal | result |", "|---|---|---|---|"]
    for c in checks:
        result = "—" if c.passed is None else "PASS" if c.passed else "MISS"
        lines.append(f"| {c.what} | {c.figure} | {c.target} | {result} |")
    return "\n".join(lines)


def render(report: Report) -> str:
    parts = [
        f"Machine: {report.machine}",
        f"Run: {report.config}",
        "",
        render_table(report.rows),
        "",
        render_checks(report.checks),
    ]
    errors = [r for r in report.rows if r.errors]
    if errors:
        parts += ["", "Errors:"] + [
            f"- {r.section} {LABELS[r.path]}: {r.errors} (e.g. {r.error_example})" for r in errors
        ]
    notes = [r for r in report.rows if r.note and r.available]
    parts += [f"- {r.section} {LABELS[r.path]}: {r.note}" for r in notes]
    return "\n".join(parts)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=100, help="concurrent streams (default 100)")
    parser.add_argument("--chunks", type=int, default=200, help="content chunks per stream (default 200)")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="ms between chunks (default 20)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument(
        "--paths", default=",".join(PATHS), help="comma-separated: direct,api,v1,conversation (default all)"
    )
    parser.add_argument(
        "--sections",
        default="single,concurrent,capacity",
        help="comma-separated: single,concurrent,capacity (default all)",
    )
    parser.add_argument(
        "--capacity", action="store_true", help="only the capacity section (--sections capacity)"
    )
    parser.add_argument("--capacity-streams", type=int, default=1000)
    parser.add_argument("--capacity-chunks", type=int, default=50)
    parser.add_argument("--capacity-gap-ms", type=float, default=200.0)
    parser.add_argument("--single-requests", type=int, default=20, help="first-byte samples with 1 stream")
    parser.add_argument("--single-full", type=int, default=3, help="whole streams read with 1 stream")
    parser.add_argument(
        "--single-chunks", type=int, default=50, help="chunks per stream in the single section"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="database for the app (default: a fresh SQLite file in a temp dir)",
    )
    parser.add_argument(
        "--profile", default="", help="py-spy the app during the profiled sections: api,v1,conversation"
    )
    parser.add_argument(
        "--profile-sections",
        default="concurrent",
        help="sections to profile (default concurrent; single profiles the per-request cost: "
        "its first-byte requests only)",
    )
    parser.add_argument("--profile-top", type=int, default=30, help="functions listed per profile")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args(argv)
    args.paths = [p for p in args.paths.split(",") if p]
    args.sections = ["capacity"] if args.capacity else [s for s in args.sections.split(",") if s]
    args.profile = [p for p in args.profile.split(",") if p]
    for path in args.paths:
        if path not in PATHS:
            parser.error(f"unknown path {path!r}")
    args.profile_sections = [s for s in args.profile_sections.split(",") if s]
    if args.profile:
        args.sections = args.profile_sections
    if "direct" not in args.paths:
        args.paths.insert(0, "direct")  # ratios and targets are relative to it
    return args


async def amain(args: argparse.Namespace) -> Report:
    nofile = raise_nofile_limit()
    need = 2 * max(args.streams, args.capacity_streams if "capacity" in args.sections else 0) + 200
    if nofile < need:
        print(f"warning: RLIMIT_NOFILE is {nofile}; {need} file descriptors may be needed", file=sys.stderr)
    config = (
        f"workers={args.workers}; single: 1 stream x {args.single_chunks} chunks, {args.single_requests} "
        f"first-byte samples + {args.single_full} whole streams; concurrent: {args.streams} streams x "
        f"{args.chunks} chunks {args.gap_ms:g} ms apart; capacity: {args.capacity_streams} streams x "
        f"{args.capacity_chunks} chunks {args.capacity_gap_ms:g} ms apart; "
        f"sections: {','.join(args.sections)}"
        + ("; PROFILED (py-spy attached: CPU figures inflated)" if args.profile else "")
    )
    report = Report(machine=machine_description(), config=config)
    report.config += f"; load average at start {os.getloadavg()[0]:.2f}"
    bench = Bench(args)
    print(f"stream bench: temp dir {bench.tmp}", file=sys.stderr, flush=True)
    bench.setup_database()
    try:
        await bench.run(report)
    finally:
        for proc in (bench.app, bench.fake):
            if proc is not None:
                proc.stop()
    report.config += f", at end {os.getloadavg()[0]:.2f} (other work on the machine skews latency figures)"
    evaluate(report, args)
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = None
    started = time.monotonic()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        report = runner.run(amain(args))
    text = render(report) + f"\n\n(bench took {time.monotonic() - started:.0f} s)"
    print(text)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": report.machine,
                    "config": report.config,
                    "rows": [asdict(r) for r in report.rows],
                    "checks": [asdict(c) for c in report.checks],
                },
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The simulator's I/O edge: push the synthetic province to a FundWatch API, or write it to files.

Pushing plays every custody bank at once: each bank gets its own token and its own sequential
stream of batches, as real banks would; the banks run side by side.

Pacing is by records, not by simulated time: records leave at about ``rate`` per wall second,
and simulated time runs as fast as that needs. With ``sim_day_s`` the intensity is chosen so that
an average simulated day takes about that many wall seconds; a weekday takes longer, a weekend
and every night pass quickly, because fewer records fall into them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import msgspec

from schemas.fields import BEIJING
from services.simulator.cursor import FeedCursor, FeedSettings
from services.simulator.feed import DEFAULT_INTENSITY, TICK_S, Feed
from services.simulator.ledger import format_time
from services.simulator.province import Province, build_province
from services.simulator.rhythm import intensity_for

if TYPE_CHECKING:  # violations builds on this module; the plan is only passed through here
    from services.simulator.violations import ViolationPlan

log = logging.getLogger("fundwatch.simulator")

PROCESSED_METRIC = "fundwatch_records_processed_total"
# Institutions first: accounts, products and related parties refer to them.
REFERENCE_ORDER = ("institutions", "accounts", "products", "related-parties")
REFERENCE_CHUNK = 1000
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class PushError(RuntimeError):
    """The API refused something the simulator sent; the message says what and why."""


@dataclass
class SimulationStats:
    pushed: int = 0  # records sent and answered
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    elapsed: float = 0.0  # wall seconds
    processed: int = 0  # from the API's metrics at the last scrape
    simulated_until: str = ""  # the simulated time the feed had reached
    first_rejections: list[str] = field(default_factory=list)  # a few server messages, for diagnosis
    # With wait_processed_s: wall seconds from the first push until the workers had processed
    # every record this run had accepted (0 when not waited for or not reached).
    drained_after: float = 0.0


@dataclass(frozen=True)
class WrittenFiles:
    out_dir: Path
    records: dict[str, int]  # per bank code
    batches: int
    simulated_until: str


def parse_metric_total(text: str, name: str = PROCESSED_METRIC) -> float:
    """The sum over all label sets of metric ``name`` in Prometheus text exposition; 0 if absent."""
    total = 0.0
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith(name) or line.startswith("#"):
            continue
        rest = line[len(name) :]
        if rest.startswith("{"):
            end = _label_end(rest)
            if end < 0:
                continue
            rest = rest[end + 1 :]
        elif not rest[:1].isspace():
            continue  # a longer name that merely starts the same way
        fields = rest.split()
        if not fields:
            continue
        try:
            total += float(fields[0])
        except ValueError:
            continue
    return total


def _label_end(text: str) -> int:
    """Index of the ``}`` closing a label set that starts at ``text[0]``; quotes may hide braces."""
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "}" and not quoted:
            return index
    return -1


def reference_payloads(province: Province, plan: ViolationPlan | None = None) -> dict[str, list[dict]]:
    """The reference data to upsert: the province's, with a plan's new and patched items."""
    return plan.reference_payloads(province) if plan is not None else province.reference_payloads()


# How far back a feed with no start begins: its simulated days run faster than real ones until
# they reach the present, so the desks see days of history within minutes, and never a record
# dated ahead of the clock (the gateway rejects those: FUNDWATCH_MAX_FUTURE_S).
HISTORY_DAYS = 7


def default_start() -> datetime:
    """Midnight of the Beijing day HISTORY_DAYS before today."""
    today = datetime.now(BEIJING).date()
    return datetime.combine(today - timedelta(days=HISTORY_DAYS), clock_time(0), BEIJING)


class _Api:
    """The few API calls the simulator makes, with retries where a re-send is safe."""

    def __init__(
        self, session: aiohttp.ClientSession, api_url: str, admin_token: str, retry_for_s: float
    ) -> None:
        self.session = session
        self.base = api_url.rstrip("/")
        self.admin_token = admin_token
        self.retry_for_s = retry_for_s
        self._jitter = random.Random()

    async def request(
        self, method: str, path: str, token: str | None, body: object = None
    ) -> tuple[int, object]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = msgspec.json.encode(body) if body is not None else None
        deadline = time.monotonic() + self.retry_for_s
        delay, attempt = 0.25, 0
        while True:
            attempt += 1
            wait = delay
            try:
                async with self.session.request(method, self.base + path, data=data, headers=headers) as resp:
                    payload = await resp.read()
                    if resp.status not in RETRY_STATUSES:
                        return resp.status, _json_or_text(payload)
                    wait = max(delay, _retry_after(resp.headers.get("Retry-After")))
                    problem = f"status={resp.status}"
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                problem = f"error={type(exc).__name__}"
            if time.monotonic() + wait > deadline:
                raise PushError(f"{method} {path} still failing after {attempt} attempts ({problem})")
            log.warning(
                "retrying method=%s path=%s attempt=%d %s wait_s=%.2f", method, path, attempt, problem, wait
            )
            await asyncio.sleep(wait * (1 + 0.2 * self._jitter.random()))
            delay = min(delay * 2, 10.0)

    async def bank_token(self, bank_code: str) -> str:
        status, answer = await self.request(
            "POST", "/v1/admin/tokens", self.admin_token, {"role": "bank", "bank_code": bank_code}
        )
        if status not in (200, 201) or not isinstance(answer, dict) or "token" not in answer:
            raise PushError(f"creating the token of bank {bank_code} failed: {_describe(status, answer)}")
        return answer["token"]

    async def upsert_reference(self, kind: str, items: list[dict]) -> int:
        upserted = 0
        for offset in range(0, len(items), REFERENCE_CHUNK):
            chunk = items[offset : offset + REFERENCE_CHUNK]
            status, answer = await self.request("PUT", f"/v1/reference/{kind}", self.admin_token, chunk)
            if status != 200 or not isinstance(answer, dict):
                raise PushError(f"PUT /v1/reference/{kind} failed: {_describe(status, answer)}")
            rejected = answer.get("rejected") or []
            if rejected:
                raise PushError(
                    f"PUT /v1/reference/{kind} rejected {len(rejected)} of {len(chunk)} items "
                    f"(from item {offset}), first: {rejected[0]}"
                )
            upserted += int(answer.get("upserted", 0))
        return upserted

    async def push_batch(self, token: str, batch: dict) -> dict:
        status, answer = await self.request("POST", "/v1/batches", token, batch)
        if status not in (200, 202) or not isinstance(answer, dict):
            raise PushError(f"batch {batch['batch_id']} refused: {_describe(status, answer)}")
        return answer

    async def processed(self) -> int | None:
        try:
            async with self.session.get(self.base + "/metrics", params={"name[]": PROCESSED_METRIC}) as resp:
                if resp.status != 200:
                    return None
                return int(parse_metric_total(await resp.text()))
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            return None


def _json_or_text(payload: bytes) -> object:
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload.decode("utf-8", "replace")[:500]


def _describe(status: int, answer: object) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        error = answer["error"]
        return f"status {status}, {error.get('code')}: {error.get('message')}"
    return f"status {status}, {answer!r}"[:600]


def _retry_after(value: str | None) -> float:
    try:
        return min(60.0, max(0.0, float(value))) if value else 0.0
    except ValueError:
        return 0.0


class _Progress:
    """Records pushed, accepted and processed, and the push rate; on a terminal as one live line,
    otherwise as a log line every few seconds."""

    def __init__(self, stats: SimulationStats, feed: Feed, enabled: bool) -> None:
        self.stats = stats
        self.feed = feed
        self.enabled = enabled
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)], maxlen=64)

    def rate(self) -> float:
        now = time.monotonic()
        self._samples.append((now, self.stats.pushed))
        while len(self._samples) > 2 and now - self._samples[0][0] > 10:
            self._samples.popleft()
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def line(self) -> str:
        s = self.stats
        return (
            f"pushed={s.pushed} accepted={s.accepted} duplicates={s.duplicates} rejected={s.rejected} "
            f"processed={s.processed} rate={self.rate():.0f}/s simulated={self.feed.clock:%Y-%m-%d %H:%M}"
        )

    async def run(self, api: _Api, done: asyncio.Event) -> None:
        scraper = asyncio.create_task(self._scrape(api, done))
        try:
            if self.enabled and sys.stderr.isatty():
                try:
                    await self._live(done)
                    return
                except ImportError:
                    pass
            while not done.is_set():
                await _wait(done, 5.0)
                if self.enabled:
                    log.info("progress %s", self.line())
        finally:
            scraper.cancel()

    async def _live(self, done: asyncio.Event) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        with Live(Text(self.line()), console=Console(stderr=True), refresh_per_second=4) as live:
            while not done.is_set():
                await _wait(done, 0.25)
                live.update(Text(self.line()))

    async def _scrape(self, api: _Api, done: asyncio.Event) -> None:
        while not done.is_set():
            processed = await api.processed()
            if processed is not None:
                self.stats.processed = processed
            await _wait(done, 2.0)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        pass


class _Pusher:
    """Generates records at the wanted pace and hands full batches to one sender per bank."""

    def __init__(
        self,
        api: _Api,
        feed: Feed,
        tokens: dict[str, str],
        stats: SimulationStats,
        *,
        rate: float,
        batch_records: int,
        flush_s: float,
        max_records: int | None,
        duration_s: float | None,
        stop: asyncio.Event | None,
        cursor: FeedCursor | None = None,
    ) -> None:
        self.api = api
        self.cursor = cursor
        self.feed = feed
        self.tokens = tokens
        self.stats = stats
        self.rate = rate
        self.batch_records = batch_records
        self.flush_s = flush_s
        self.max_records = max_records
        self.duration_s = duration_s
        self.stop = stop
        self.queues: dict[str, asyncio.Queue[dict | None]] = {
            bank: asyncio.Queue(maxsize=2) for bank in tokens
        }

    async def send_loop(self, bank: str) -> None:
        queue = self.queues[bank]
        while (batch := await queue.get()) is not None:
            answer = await self.api.push_batch(self.tokens[bank], batch)
            if self.cursor is not None:
                self.cursor.answered(bank, len(batch["records"]))
            rejected = answer.get("rejected") or []
            s = self.stats
            s.pushed += len(batch["records"])
            s.accepted += int(answer.get("accepted", 0))
            s.duplicates += int(answer.get("duplicates", 0))
            s.rejected += len(rejected)
            s.batches += 1
            if rejected:
                first = rejected[0]
                # The index and the server's rule, never the record's content.
                log.warning(
                    "records rejected batch_id=%s count=%d first_index=%s first_error=%r",
                    batch["batch_id"], len(rejected), first.get("index"), first.get("error"),
                )  # fmt: skip
                if len(s.first_rejections) < 5:
                    s.first_rejections.append(str(first.get("error")))

    def _finished(self, started: float, produced: int) -> bool:
        if self.stop is not None and self.stop.is_set():
            return True
        if self.duration_s is not None and time.monotonic() - started >= self.duration_s:
            return True
        return self.max_records is not None and produced >= self.max_records

    async def produce(self) -> None:
        buffers: dict[str, list[dict]] = {bank: [] for bank in self.tokens}
        oldest: dict[str, float] = {}
        started = last = time.monotonic()
        # A token bucket at most a second (or a batch) ahead, so a stall does not end in a burst.
        tokens, burst = 0.0, max(self.rate, float(self.batch_records))
        produced = 0
        while not self._finished(started, produced):
            now = time.monotonic()
            tokens = min(burst, tokens + (now - last) * self.rate)
            last = now
            # At most a simulated day per round, so a quiet night never starves the senders.
            for _ in range(86_400 // TICK_S):
                if tokens <= 0 or (self.max_records is not None and produced >= self.max_records):
                    break
                if self.feed.clock.timestamp() + TICK_S > time.time():
                    break  # simulated time has reached the present: from here it keeps pace with it
                made = self.feed.advance(TICK_S)
                if self.cursor is not None:
                    # records answered before a restart are made again, not pushed nor paced
                    made = self.cursor.drop_answered(made)
                for bank, records in made.items():
                    if self.max_records is not None:
                        records = records[: self.max_records - produced]
                    if records:
                        buffers[bank].extend(records)
                        oldest.setdefault(bank, now)
                        produced += len(records)
                        tokens -= len(records)
            for bank, buffer in buffers.items():
                if buffer and (len(buffer) >= self.batch_records or now - oldest[bank] >= self.flush_s):
                    await self._hand_over(bank, buffer)
                    buffers[bank] = []
                    oldest.pop(bank, None)
            self.stats.simulated_until = format_time(int(self.feed.clock.timestamp()))
            await asyncio.sleep(0.05)
        for bank, buffer in buffers.items():
            if buffer:
                await self._hand_over(bank, buffer)
        for queue in self.queues.values():
            await queue.put(None)

    async def _hand_over(self, bank: str, records: list[dict]) -> None:
        for batch in self.feed.batches({bank: records}, max_records=self.batch_records):
            await self.queues[bank].put(batch)


async def run_simulation(
    api_url: str,
    admin_token: str,
    *,
    seed: int = 7,
    institutions: int = 24,
    rate: float = 500.0,
    duration_s: float | None = None,
    max_records: int | None = None,
    start: datetime | None = None,
    progress: bool = True,
    stop: asyncio.Event | None = None,
    sim_day_s: float = 180.0,
    batch_records: int = 1000,
    flush_s: float = 1.0,
    run_id: str | None = None,
    retry_for_s: float = 120.0,
    wait_processed_s: float = 0.0,
    violations: ViolationPlan | Callable[[Province], ViolationPlan] | None = None,
    cursor: FeedCursor | None = None,
    demo: bool = False,
) -> SimulationStats:
    """Create a token per bank, upsert the reference data, then push records at about ``rate``
    per second until ``duration_s`` passes, ``max_records`` are pushed or ``stop`` is set.

    ``start`` is the first simulated moment (default: midnight of today, Beijing time). Each call
    uses a fresh ``run_id`` unless given one, so a second run is new data, not duplicates.
    With ``wait_processed_s`` it then waits up to that long for the workers to process every
    accepted record, and reports when they had (``drained_after``): an end-to-end rate.
    ``violations`` injects a plan (or a function making one for the province, which is built here
    from ``seed``, ``institutions`` and ``start``); its reference items are upserted with the
    province's before the first record.
    """
    if rate <= 0:
        raise ValueError("rate must be above 0")
    if sim_day_s <= 0:
        raise ValueError("sim_day_s must be above 0")
    start = start or default_start()
    run_id = run_id or f"s{seed}-{datetime.now(BEIJING):%Y%m%d%H%M%S}"
    intensity = intensity_for(rate, sim_day_s)
    if cursor is not None:
        settings = FeedSettings(seed=seed, institutions=institutions, intensity=intensity, demo=demo)
        state = cursor.resume_or_start(settings, int(start.timestamp()), run_id)
        start, run_id = datetime.fromtimestamp(state.start, BEIJING), state.run_id
    province = build_province(seed, institutions, as_of=start.astimezone(BEIJING).date())
    plan = violations(province) if callable(violations) else violations
    feed = Feed(province, seed, start, intensity=intensity, run_id=run_id, violations=plan)
    if cursor is not None:
        feed.batch_prefix = cursor.batch_prefix
    stats = SimulationStats()
    began = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=60, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        api = _Api(session, api_url, admin_token, retry_for_s)
        tokens = {bank: await api.bank_token(bank) for bank in province.bank_codes}
        payloads = reference_payloads(province, plan)
        for kind in REFERENCE_ORDER:
            upserted = await api.upsert_reference(kind, payloads[kind])
            log.info("reference upserted kind=%s count=%d", kind, upserted)
        log.info(
            "simulation started run_id=%s seed=%d institutions=%d banks=%d rate=%.0f sim_day_s=%.0f",
            run_id, seed, institutions, len(tokens), rate, sim_day_s,
        )  # fmt: skip
        processed_before = await api.processed() or 0
        pushing_from = time.monotonic()
        pusher = _Pusher(
            api, feed, tokens, stats,
            rate=rate, batch_records=batch_records, flush_s=flush_s,
            max_records=max_records, duration_s=duration_s, stop=stop, cursor=cursor,
        )  # fmt: skip
        display = _Progress(stats, feed, progress)
        done = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                senders = [group.create_task(pusher.send_loop(bank)) for bank in tokens]
                group.create_task(display.run(api, done))
                await pusher.produce()
                await asyncio.gather(*senders)
                done.set()
        except* Exception as failure:
            # One failure cancels the rest; the caller gets that failure, not a group.
            raise failure.exceptions[0] from None
        processed = await api.processed()
        deadline = time.monotonic() + wait_processed_s
        while (
            processed is not None
            and processed - processed_before < stats.accepted
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.1)
            processed = await api.processed()
        if processed is not None:
            stats.processed = processed
            if wait_processed_s and processed - processed_before >= stats.accepted:
                stats.drained_after = time.monotonic() - pushing_from
    stats.elapsed = time.monotonic() - began
    stats.simulated_until = format_time(int(feed.clock.timestamp()))
    log.info(
        "simulation finished run_id=%s pushed=%d accepted=%d duplicates=%d rejected=%d batches=%d "
        "elapsed_s=%.1f simulated_until=%s",
        run_id, stats.pushed, stats.accepted, stats.duplicates, stats.rejected, stats.batches,
        stats.elapsed, stats.simulated_until,
    )  # fmt: skip
    return stats


def write_files(
    province: Province,
    out_dir: Path,
    *,
    hours: float,
    seed: int = 7,
    start: datetime | None = None,
    intensity: float = DEFAULT_INTENSITY,
    batch_records: int = 2000,
    run_id: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    violations: ViolationPlan | None = None,
) -> WrittenFiles:
    """Write the reference data and ``hours`` of simulated records instead of pushing them.

    With ``violations`` the plan is injected; ``labels.jsonl`` then holds its ground truth,
    ``violations.json`` the plan and what each injection made, and the reference files carry the
    plan's new products and investor accounts too.

    Layout: ``reference/<kind>.json`` (a JSON array, the body of ``PUT /v1/reference/<kind>``),
    ``batches/<bank>.jsonl`` (one ``POST /v1/batches`` body a line) and ``labels.jsonl`` (ground
    truth of injected behaviour; empty for normal activity). ``start`` defaults to midnight of the
    province's ``as_of`` day, so the same arguments write the same files.
    """
    if hours <= 0:
        raise ValueError("hours must be above 0")
    out_dir = Path(out_dir)
    (out_dir / "reference").mkdir(parents=True, exist_ok=True)
    (out_dir / "batches").mkdir(parents=True, exist_ok=True)
    for kind, items in reference_payloads(province, violations).items():
        (out_dir / "reference" / f"{kind}.json").write_bytes(msgspec.json.encode(items) + b"\n")

    feed = Feed(province, seed, start, intensity=intensity, run_id=run_id, violations=violations)
    encoder = msgspec.json.Encoder()
    counts = dict.fromkeys(province.bank_codes, 0)
    batches = 0
    files = {bank: (out_dir / "batches" / f"{bank}.jsonl").open("wb") for bank in province.bank_codes}
    try:
        remaining = hours * 3600
        while remaining >= TICK_S:
            step = min(3600.0, remaining)
            remaining -= step
            for batch in feed.batches(feed.advance(step), max_records=batch_records):
                files[batch["bank_code"]].write(encoder.encode(batch) + b"\n")
                counts[batch["bank_code"]] += len(batch["records"])
                batches += 1
            if on_progress is not None:
                on_progress(sum(counts.values()))
    finally:
        for handle in files.values():
            handle.close()
    with (out_dir / "labels.jsonl").open("wb") as handle:
        for label in feed.labels:
            handle.write(encoder.encode(label) + b"\n")
    if violations is not None and feed.injector is not None:
        summary = {
            **violations.to_builtins(),
            "outcome": feed.injector.report(),
            "conflicts": feed.injector.conflicts,
        }
        (out_dir / "violations.json").write_bytes(msgspec.json.format(msgspec.json.encode(summary)) + b"\n")
    simulated_until = format_time(int(feed.clock.timestamp()))
    log.info(
        "files written records=%d batches=%d banks=%d simulated_until=%s",
        sum(counts.values()), batches, len(counts), simulated_until,
    )  # fmt: skip
    return WrittenFiles(out_dir, counts, batches, simulated_until)

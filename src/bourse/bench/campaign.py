"""``bourse scale --campaign``: every measurement the report needs, in one
command that fits a time budget on a machine of any size.

The campaign runs, in this order, each run a fresh pinned server verified
as ``bourse bench`` verifies (``scale.py``):

1. **Cores**: for each repetition, each server core count, each load shape
   (persistent with 1 and with 10 orders per request, a connection per
   request) and each ``--workers`` rule, the exchange; then the same load
   against the parse-and-answer null server on the same cores, so every
   exchange figure has its ceiling measured in the same hour.
   Repetitions are interleaved, so a noisy minute spreads over all
   configurations instead of biasing one.
2. **Open loop**: at the most cores, the first load shape, offered at
   rising multiples of the closed-loop throughput measured in step 1
   (pipelined clients can go well past it) until two runs in a row fall
   behind or see p99 ten times the lowest load's: the throughput–latency
   curve and its knee.
3. **Feed**: the same shape with 10, 50, 200 WebSocket subscribers (the
   step-1 runs at the most cores are the 0-subscriber baseline).

A run's size is chosen when its configuration first runs, so that what is
left of the budget is shared by the runs left: the budget, less the
measured overhead of starting and checking each run, divided among them,
times the throughput that configuration (or the nearest measured one)
gave. Repetitions of a configuration keep its size. Each run is written
as it ends (``runs/*.json``) with ``campaign.json`` beside them (machine,
commit, settings, what this machine cannot show), so an interrupted
campaign still leaves a report's worth of results.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bourse.bench.analysis import KEPT_UP, machine_limits
from bourse.bench.pinning import template_cluster, usable_cores
from bourse.bench.results import CAMPAIGN_FILE, Traffic
from bourse.bench.run import BenchSettings, machine
from bourse.bench.scale import run_line, run_null, run_once, workers_for, write_json

TRAFFIC = (Traffic(True, 1), Traffic(True, 10), Traffic(False, 1))
#: Offered rates, as multiples of the closed-loop throughput: pipelined
#: open-loop clients can go well past it before the server falls behind.
OPEN_LOOP = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
SUBSCRIBERS = (10, 50, 200)
#: p99 over the lowest offered load's past which a run is well past the knee.
PAST_KNEE = 10.0
#: Seconds of load per run: never less, never more.
SHORTEST, LONGEST = 0.5, 20.0
#: Seconds kept for writing the report after the last run.
RESERVE = 30.0
#: First guesses, replaced by what is measured: seconds around each run's
#: load, and requests per second at 1 order per request.
OVERHEAD = {"exchange": 7.0, "null": 1.5}
GUESS = {"exchange": 3000.0, "null": 15000.0}


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    """What the campaign measures and in how long."""

    cores: tuple[int, ...]
    #: ``--workers`` rules: a count, or ``cores`` (one gateway per server core).
    workers: tuple[str, ...] = ("0", "cores")
    repetitions: int = 3
    traffic: tuple[Traffic, ...] = TRAFFIC
    open_loop: tuple[float, ...] = OPEN_LOOP
    subscribers: tuple[int, ...] = SUBSCRIBERS
    budget_seconds: float = 25 * 60.0
    #: Clients, accounts, symbols and seed of every run.
    base: BenchSettings = field(default_factory=BenchSettings)


def default_cores(most: int) -> tuple[int, ...]:
    """1..most on a small machine; doublings and ``most`` on a large one."""
    if most <= 8:  # every count while the sweep stays short
        return tuple(range(1, most + 1))
    doublings = [2**power for power in range(most.bit_length()) if 2**power < most]
    return (*doublings, most)


@dataclass(frozen=True, slots=True)
class Job:
    """One run to make: which experiment, server, shape, rule and cores;
    ``step`` is the repetition, the open-loop step or the subscriber count."""

    experiment: str
    server: str
    traffic: Traffic
    rule: str
    cores: int
    step: int
    rate: float | None = None

    @property
    def config(self) -> tuple[str, str, Traffic, str, int, int]:
        """What repetitions share (their size)."""
        step = 0 if self.experiment == "cores" else self.step
        return (self.experiment, self.server, self.traffic, self.rule, self.cores, step)

    @property
    def name(self) -> str:
        rule = "" if self.server == "null" else f"-w{self.rule}"
        tag = {"cores": "r", "open-loop": "step", "feed": "subs"}[self.experiment]
        return (
            f"{self.experiment}-{self.server}-{self.traffic.slug}{rule}"
            f"-k{self.cores}-{tag}{self.step:02d}.json"
        )


class Campaign:
    """Runs jobs within the budget and keeps what they measured."""

    def __init__(self, settings: CampaignSettings, out: Path, template: Path) -> None:
        self.settings = settings
        self.out = out
        self.template = template
        self.started = time.monotonic()
        self.overhead = dict(OVERHEAD)
        self.sizes: dict[tuple[str, str, Traffic, str, int, int], int] = {}
        self.results: list[tuple[Job, dict[str, Any]]] = []
        self.failures: list[str] = []
        self.left = {"exchange": 0, "null": 0}

    def run(self, job: Job) -> dict[str, Any] | None:
        """Make one run and write it; None if it could not run at all."""
        settings = self._settings(job)
        began = time.monotonic()
        try:
            if job.server == "null":
                result = run_null(settings, job.cores)
            else:
                result = run_once(
                    settings, job.cores, workers_for(job.rule, job.cores), self.template
                )
        except (RuntimeError, OSError) as error:
            self.failures.append(f"{job.name}: {error}")
            print(f"{job.name}: FAILED to run: {error}", flush=True)
            return None
        finally:
            self.left[job.server] -= 1
        wall = time.monotonic() - began
        result.update(
            experiment=job.experiment, workers_rule=job.rule, repetition=job.step, wall=wall
        )
        self._learn(job.server, wall - float(result["seconds"]))
        write_json(self.out / "runs" / job.name, result)
        self.results.append((job, result))
        print(f"{run_line(result)} [{self._clock()}]", flush=True)
        return result

    def _clock(self) -> str:
        elapsed = time.monotonic() - self.started
        return f"{elapsed / 60:.1f} of {self.settings.budget_seconds / 60:.1f} min"

    def _learn(self, server: str, overhead: float) -> None:
        self.overhead[server] = 0.5 * self.overhead[server] + 0.5 * max(0.0, overhead)

    def load_seconds(self) -> float:
        """Seconds of load each run left may have, for the budget to hold."""
        left = self.settings.budget_seconds - (time.monotonic() - self.started) - RESERVE
        counts = {server: max(0, count) for server, count in self.left.items()}
        runs = sum(counts.values())
        left -= sum(self.overhead[server] * count for server, count in counts.items())
        return min(LONGEST, max(SHORTEST, left / max(1, runs)))

    def _settings(self, job: Job) -> BenchSettings:
        clients = self.settings.base.clients
        if job.config not in self.sizes:
            requests = self.load_seconds() * (job.rate or self.estimate(job))
            self.sizes[job.config] = max(2, math.ceil(requests / clients))
        subscribers = job.step if job.experiment == "feed" else 0
        return replace(
            self.settings.base,
            requests_per_client=self.sizes[job.config],
            orders_per_request=job.traffic.orders,
            persistent=job.traffic.persistent,
            rate=job.rate,
            subscribers=subscribers,
        )

    def estimate(self, job: Job) -> float:
        """Requests per second ``job`` should give: the latest measured of the
        most alike configuration, else a first guess."""
        alike = [
            result
            for done, result in self.results
            if (done.server, done.traffic) == (job.server, job.traffic) and not done.rate
        ]
        closer = [result for result in alike if result.get("workers_rule") == job.rule]
        chosen = (closer or alike)[-1:] if (closer or alike) else []
        if chosen:
            return float(chosen[0]["orders_per_second"]) / job.traffic.orders
        return GUESS[job.server] / math.sqrt(job.traffic.orders)


def core_jobs(settings: CampaignSettings) -> list[Job]:
    """Step 1: every repetition of every core count, shape and rule, then
    the null server on the same cores."""
    return [
        Job("cores", server, traffic, rule, cores, repetition)
        for repetition in range(1, settings.repetitions + 1)
        for cores in settings.cores
        for traffic in settings.traffic
        for server, rule in [*(("exchange", rule) for rule in settings.workers), ("null", "-")]
    ]


def _peak(campaign: Campaign, rule: str, traffic: Traffic, cores: int) -> float | None:
    """Mean closed-loop requests/s of ``rule`` and ``traffic`` at ``cores``."""
    rates = [
        float(result["orders_per_second"]) / traffic.orders
        for job, result in campaign.results
        if job.experiment == "cores"
        and (job.server, job.rule, job.traffic, job.cores) == ("exchange", rule, traffic, cores)
    ]
    return sum(rates) / len(rates) if rates else None


def _past_knee(result: dict[str, Any] | None, offered: float, first_p99: float | None) -> bool:
    """Whether an open-loop run fell behind its offered requests/s or its
    p99 rose past ``PAST_KNEE`` times the first step's."""
    if result is None:
        return True
    achieved = float(result["orders_per_second"]) / int(result["settings"]["orders_per_request"])
    p99 = float(result["latency_ms"]["p99"])
    return achieved < KEPT_UP * offered or (first_p99 is not None and p99 > PAST_KNEE * first_p99)


def open_loop(campaign: Campaign, rule: str) -> None:
    """Step 2 for one rule: rising offered rates until two runs in a row are
    past the knee."""
    settings = campaign.settings
    traffic, cores = settings.traffic[0], settings.cores[-1]
    peak = _peak(campaign, rule, traffic, cores)
    ran, past = 0, 0
    first_p99: float | None = None
    for step, multiple in enumerate(settings.open_loop, start=1):
        if peak is None or past == 2:  # twice in a row: saturation, not noise
            break
        job = Job("open-loop", "exchange", traffic, rule, cores, step, rate=peak * multiple)
        result = campaign.run(job)
        ran += 1
        past = past + 1 if _past_knee(result, peak * multiple, first_p99) else 0
        if first_p99 is None and result is not None:
            first_p99 = float(result["latency_ms"]["p99"])
    campaign.left["exchange"] -= len(settings.open_loop) - ran


def feed(campaign: Campaign, rule: str) -> None:
    """Step 3 for one rule: each subscriber count, once."""
    settings = campaign.settings
    for subscribers in settings.subscribers:
        campaign.run(
            Job("feed", "exchange", settings.traffic[0], rule, settings.cores[-1], subscribers)
        )


def describe(settings: CampaignSettings) -> dict[str, Any]:
    """The campaign's settings and machine, for ``campaign.json``."""
    described = asdict(settings)
    described["traffic"] = [traffic.slug for traffic in settings.traffic]
    described["base"] = {
        name: value
        for name, value in asdict(settings.base).items()
        if name in {"clients", "accounts", "symbols", "seed"}
    }
    return {
        "machine": {**machine(), "memory_bytes": psutil.virtual_memory().total},
        "settings": described,
        "usable_cores": usable_cores(),
        "limits": machine_limits(len(usable_cores()), max(settings.cores)),
    }


def _warn_if_short(campaign: Campaign) -> None:
    """Say so when even the shortest runs cannot fit the budget."""
    runs = sum(campaign.left.values())
    least = sum(campaign.overhead[server] * count for server, count in campaign.left.items())
    least += runs * SHORTEST + RESERVE
    if least > campaign.settings.budget_seconds:
        print(
            f"note: about {runs} runs need at least {least / 60:.0f} min here, more than the "
            f"budget of {campaign.settings.budget_seconds / 60:.1f} min: every run will be "
            f"{SHORTEST} s of load and the campaign will take longer",
            flush=True,
        )
    else:
        print(
            f"note: about {runs} runs of {campaign.load_seconds():.1f} s of load each", flush=True
        )


def run_campaign(settings: CampaignSettings, out: Path) -> int:
    """Run it all into ``out``; 0 if every run ran and passed its checks."""
    (out / "runs").mkdir(parents=True, exist_ok=True)
    record = {**describe(settings), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json(out / CAMPAIGN_FILE, record)
    for line in record["limits"]:
        print(f"note: {line}", flush=True)
    jobs = core_jobs(settings)
    with template_cluster() as template:
        campaign = Campaign(settings, out, template)
        rules = len(settings.workers)
        campaign.left["null"] = sum(job.server == "null" for job in jobs)
        campaign.left["exchange"] = (
            len(jobs)
            - campaign.left["null"]
            + rules * (len(settings.open_loop) + len(settings.subscribers))
        )
        _warn_if_short(campaign)
        for job in jobs:
            campaign.run(job)
        for rule in settings.workers:
            open_loop(campaign, rule)
        for rule in settings.workers:
            feed(campaign, rule)
    elapsed = time.monotonic() - campaign.started
    record.update(elapsed_seconds=elapsed, failures=campaign.failures)
    write_json(out / CAMPAIGN_FILE, record)
    failed = campaign.failures or [
        job.name for job, result in campaign.results if not result["checks"]["ok"]
    ]
    print(f"{len(campaign.results)} runs in {elapsed / 60:.1f} min, results in {out}")
    return 1 if failed else 0

"""A year in the life: autopilot runs hourly for 400 simulated days on the dev and staging stacks.

Each run is the command the workflow runs (`autopilot --file F --now T --outputs O --json`, the
clock injected); each change it makes is deployed after a random delay of up to a day through the
engine-faithful harness (tests/engine.py; staging's AWS and GCP keys in tests/kms_emulators.py),
so the publishers' first-published records and the deployment records it reads next are real
stack outputs. A person does what autopilot says a person must: supply an external (HSM) key,
record the re-encryption of data at rest.

Asserted at the end: no verifier rejection (the plan's gap check on the real outputs, and the
brute-force verifier simulation of tests/test_gaps.py on what was deployed, agree), no deployed
active key past maxAgeDays, every keyset rotated on schedule, and at most 60 pull requests a year
for the weekly key.

Hours are skipped only where autopilot itself says nothing can change (its `nextDueAt`, or the
next deployment); `test_skipping_the_hours_autopilot_calls_idle_changes_nothing` proves that on a
fully hourly run. Randomness is seeded (13 in CI): AUTOPILOT_YEAR_SEED=random (or a number) varies
it, and the `property`-marked long variant (HYPOTHESIS_PROFILE=long, the nightly job) runs three
random seeds and names the failing one.
"""

from __future__ import annotations

import io
import json
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyrotation import lifecycle
from keyrotation.commands import autopilot, cli, schedule
from keyrotation.commands.cli import main
from keyrotation.commands.outputs import records
from keyrotation.commands.records import deployed_stops
from keyrotation.config import StackConfig, load_stack_file
from keyrotation.lifecycle import PUBLISHED_STATES
from keyrotation.times import format_time, parse
from tests.engine import Engine
from tests.project import copy_project
from tests.test_gaps import History

START = datetime(2026, 11, 24, tzinfo=UTC)
DAYS = 400
MAX_DELAY_MINUTES = 24 * 60
"""Each change is deployed after a random delay of up to a day (the stacks' slackHours: 24)."""
BUDGET_SECONDS = 180
"""The CI budget of one stack's year, in CPU seconds (measured: docs/design.md, "Measured speed")."""


def seed() -> int:
    value = os.environ.get("AUTOPILOT_YEAR_SEED", "13")
    return random.SystemRandom().randrange(2**32) if value == "random" else int(value)


def ceil_hour(t: datetime) -> datetime:
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(hours=1)


@dataclass
class Year:
    """What happened, as the test looks at it afterwards."""

    stack: str
    path: Path
    start: datetime
    end: datetime
    initial: StackConfig
    """The stack file's config when the simulation began."""
    changes: list[tuple[datetime, list[dict]]] = field(default_factory=list)
    """Each autopilot change (one pull request of the stack): when, and its steps."""
    person: list[tuple[datetime, str]] = field(default_factory=list)
    deployments: list[tuple[datetime, dict[str, dict[str, str]]]] = field(default_factory=list)
    """Each `pulumi up`: when, and per keyset each generation's deployed state."""
    outputs: dict = field(default_factory=dict)
    runs: int = 0
    cpu_seconds: float = 0.0
    """CPU time of the simulation (its own process, every thread): the budget, independent of how
    busy the machine is."""
    overdue: list[str] = field(default_factory=list)
    """A run that found a keyset past maxAgeDays in the stack file."""
    late_deploy: datetime | None = None
    """When the change the simulation was told to deploy late was deployed (None: none was)."""

    def pull_requests(self, keyset: str) -> int:
        """The stack's pull requests this keyset caused: those with a step of it that was due (a
        tidy-up step riding along with another keyset's change costs no pull request)."""
        return sum(1 for _, steps in self.changes
                   if any(s["keyset"] == keyset and not s["ridesAlong"] for s in steps))


class Simulation:
    def __init__(self, engine: Engine, project: Path, stack: str, rng: random.Random, tmp: Path,
                 monkeypatch, *, hourly: bool = False, late: tuple | None = None):
        self.engine, self.project, self.stack, self.rng, self.tmp = engine, project, stack, rng, tmp
        self.monkeypatch = monkeypatch
        self.hourly = hourly
        self.late = late
        """(which change, delay in minutes): deploy the first change that satisfies it that late."""
        self.path = project / f"Pulumi.{stack}.yaml"
        self.outputs_path = tmp / f"outputs-{stack}.json"
        self.clock = START
        monkeypatch.setattr(cli, "wall_clock", lambda: self.clock)
        self.deployed_text: str | None = None
        self.queue: list[datetime] = []
        self.person_retry: datetime | None = None
        self.late_deploy: datetime | None = None

    def deploy(self, at: datetime, year: Year) -> None:
        text = self.path.read_text()
        if text == self.deployed_text:
            return  # nothing merged since the last `pulumi up`: it changes nothing
        self.monkeypatch.setenv("KEY_ROTATION_NOW", format_time(at))
        run = self.engine.up()
        self.deployed_text = text
        year.outputs = run.outputs
        self.outputs_path.write_text(json.dumps(run.outputs))
        year.deployments.append((at, {
            name: {g["id"]: g["state"] for g in summary["generations"]}
            for name, summary in run.outputs["keysets"].items()
        }))

    def command(self, *args: str, now: datetime) -> tuple[int, dict | None, str]:
        self.clock = now
        out, err = io.StringIO(), io.StringIO()
        code = main([*args, "--file", str(self.path), "--now", format_time(now),
                     "--outputs", str(self.outputs_path), "--json"], out=out, err=err)
        text = out.getvalue()
        return code, (json.loads(text) if text.strip() else None), err.getvalue()

    def schedule_deploy(self, now: datetime, steps: list[dict]) -> None:
        minutes = self.rng.randrange(MAX_DELAY_MINUTES + 1)
        if self.late is not None and self.late[0](steps):
            minutes, self.late = self.late[1], None
            self.late_deploy = now + timedelta(minutes=minutes)
        self.queue.append(now + timedelta(minutes=minutes))
        self.queue.sort()

    def person(self, now: datetime, data: dict, year: Year) -> bool:
        """Do what autopilot says a person must; True when something was recorded."""
        acted = False
        for blocked in data["blocked"]:
            keyset, step = blocked["keyset"], blocked["step"]
            if step == "retire" and "rewrapped" in blocked["why"]:
                generation = blocked["why"].split("'")[1]
                code, _, err = self.command("rewrapped", keyset, generation, "--by", "re-encryption job",
                                            now=now)
            elif step == "rotate" and "a person must supply" in blocked["why"]:
                pem = self.tmp / f"{keyset}-{format_time(now)}.pub"
                algorithm = load_stack_file(self.path).keysets[keyset].algorithm
                pem.write_text(external_public_key(self.tmp, algorithm, f"{keyset}-{len(year.person)}"))
                code, _, err = self.command("rotate", keyset, "--public-key", str(pem), now=now)
            else:
                continue
            if code == 0:
                year.person.append((now, f"{step} {keyset}"))
                acted = True
            else:
                self.person_retry = now + timedelta(hours=1)
        return acted

    def run(self, days: int) -> Year:
        year = Year(self.stack, self.path, START, START + timedelta(days=days), load_stack_file(self.path))
        self.deploy(START, year)
        now = START
        while now < year.end:
            while self.queue and self.queue[0] <= now:
                self.deploy(self.queue.pop(0), year)
            code, data, err = self.command("autopilot", now=now)
            assert data is not None and code in (0, 7, 8), err
            year.runs += 1
            stack = load_stack_file(self.path)
            for name, ks in stack.keysets.items():
                if lifecycle.key_age(ks.generations, ks.timings, now).health == "overdue":
                    year.overdue.append(f"{format_time(now)} {name}")
            if code == autopilot.EXIT_CHANGED:
                year.changes.append((now, data["steps"]))
                self.schedule_deploy(now, data["steps"])
            self.person_retry = None
            if data["blocked"] and self.person(now, data, year):
                self.schedule_deploy(now, [])
            now = self.next_run(now, data)
        return year

    def next_run(self, now: datetime, data: dict) -> datetime:
        following = now + timedelta(hours=1)
        if self.hourly:
            return following
        candidates = [ceil_hour(t) for t in self.queue]
        if data["nextDueAt"] is not None:
            candidates.append(ceil_hour(parse(data["nextDueAt"])))
        if self.person_retry is not None:
            candidates.append(self.person_retry)
        return max(following, min(candidates)) if candidates else now + timedelta(days=DAYS)


_EXTERNAL: dict[str, str] = {}


def external_public_key(tmp: Path, algorithm: str, name: str) -> str:
    """A new HSM key's public half, as a person would export it (openssl, as tests/test_profiles.py)."""
    from tests.test_profiles import NATIONAL, _gost_engine, _make_key

    if NATIONAL[algorithm].get("engine") and not _gost_engine(tmp):
        pytest.skip("OpenSSL's GOST engine is not installed")
    return _make_key(tmp, algorithm, name)


# ---------------------------------------------------------------------------------------------
# What is asserted


def deployed_periods(year: Year, keyset: str) -> list[tuple[str, datetime, datetime]]:
    """Per generation, [first deployed active, first deployed no longer active), from the deployments."""
    out: list[tuple[str, datetime, datetime]] = []
    current: tuple[str, datetime] | None = None
    initial = load_stack_file(year.path).keysets[keyset]
    for at, states in year.deployments:
        active = next((g for g, s in states.get(keyset, {}).items() if s == "active"), None)
        if current is not None and active != current[0]:
            out.append((current[0], current[1], at))
            current = None
        if active is not None and current is None:
            began = at
            if at == year.start:  # active before the simulation: since its recorded activation
                activated = initial.generation(active).activated_at
                assert activated is not None
                began = activated
            current = (active, began)
    if current is not None:
        out.append((current[0], current[1], year.end))
    return out


def brute_force_rejections(year: Year, keyset: str) -> dict[str, list[int]]:
    """tests/test_gaps.py's verifier simulation on what was deployed, minute by minute, one
    generation's lifetime at a time (a year of minutes at once would take far too long)."""
    ks = load_stack_file(year.path).keysets[keyset]
    t = ks.timings
    cache, skew, lifetime = (t.publish_max_age_seconds // 60, t.clock_skew_seconds // 60,
                             t.token_lifetime_seconds // 60)
    assert (t.publish_max_age_seconds % 60, t.clock_skew_seconds % 60,
            t.token_lifetime_seconds % 60) == (0, 0, 0)

    def minute(at: datetime) -> int:
        return int((at - year.start).total_seconds() // 60)

    summary = year.outputs["keysets"][keyset]
    kid_of = {g["id"]: g["kid"] for g in summary["generations"]}
    first_published: dict[str, int] = {}
    for document in summary["documents"].values():
        for gid, kid in kid_of.items():
            if kid in (document.get("firstPublished") or {}):
                first = minute(parse(document["firstPublished"][kid]))
                first_published[gid] = max(first_published.get(gid, first), first)
    snapshots: list[tuple[int, str | None, frozenset[str]]] = []
    for at, states in year.deployments:
        mine = states.get(keyset, {})
        active = next((g for g, s in mine.items() if s == "active"), None)
        published = frozenset(g for g, s in mine.items() if s in PUBLISHED_STATES)
        snapshots.append((minute(at), active, published))
    # What was deployed before the simulation began: published long before, active since.
    before = -10 * (cache + skew + lifetime + 10)
    initial = snapshots[0]
    for g in initial[2]:
        first_published[g] = min(first_published.get(g, 0), 2 * before)
    snapshots = [(2 * before, None, initial[2]), (before, initial[1], initial[2]), *snapshots[1:]]
    end = minute(year.end)
    margin = 2 * (cache + skew) + lifetime + 10
    found: dict[str, list[int]] = {}
    for g, published_at in first_published.items():
        appears = min(m for m, _, p in snapshots if g in p)
        leaves = next((m for m, _, p in snapshots if m > appears and g not in p), end)
        w0, w1 = min(appears, published_at) - margin, min(leaves, end) + margin
        state: tuple[str | None, frozenset[str]] = (None, frozenset())
        for m, a, p in snapshots:
            if m <= w0:
                state = (a, p)
        window = [(0, *state)] + [(m - w0, a, p) for m, a, p in snapshots if w0 < m <= w1]
        window.append((w1 - w0, *window[-1][1:]))
        history = History(cache, skew, lifetime, snapshots=window, first_published={g: published_at - w0})
        for generation, minutes in history.rejections().items():
            bad = sorted(v + w0 for v, kinds in minutes.items() if False in kinds)
            if bad:
                found[generation] = bad
    return found


def simulated(year: Year, gaps: list[lifecycle.Gap]) -> list[lifecycle.Gap]:
    """The gaps of the simulated time: the first deployment of the simulation is where a keyring's
    record begins (keyring keysets publish at their first deployment), so a key that was in use
    before it looks "published late" until a publish lead after it. That is the harness starting
    from an empty state, not something autopilot did."""
    start = year.start
    return [g for g in gaps
            if not (g.end <= start + year.initial.keysets[g.keyset].timings.publish_lead
                    and any(x.id == g.generation for x in year.initial.keysets[g.keyset].generations))]


def check_year(year: Year, weekly: str) -> None:
    stack = load_stack_file(year.path)
    recs = records(year.outputs, stack, "simulation outputs")
    # No verifier rejection: the plan's gap check on the real outputs ...
    for item in schedule.plan(stack, year.end, recs):
        assert simulated(year, item.unintended_gaps) == [], [g.describe() for g in item.unintended_gaps]
    for name, ks in stack.keysets.items():
        gaps = lifecycle.keyset_gaps(ks, recs[name].first_published, deployed_stops(ks, recs[name]))
        assert simulated(year, [g for g in gaps if not g.intended]) == []
    # ... and the brute-force verifiers on what was deployed agree.
    assert brute_force_rejections(year, weekly) == {}
    # No active key past maxAgeDays: neither in the stack file at any run nor as deployed.
    assert year.overdue == []
    for name, ks in stack.keysets.items():
        for generation, began, ended in deployed_periods(year, name):
            assert ended - began <= ks.timings.max_age, (name, generation, began, ended)
    # Every keyset rotated on schedule: a promote for every due date that fell within the year.
    for name, ks in year.initial.keysets.items():
        promotes = sum(1 for _, steps in year.changes for s in steps
                       if s["keyset"] == name and s["command"] == "promote")
        due = lifecycle.key_age(ks.generations, ks.timings, year.start).due_at
        required = 0
        while due is not None and due <= year.end - timedelta(days=1):
            required += 1
            due += ks.timings.max_age
        assert promotes >= required, (name, promotes, required)
    # One pull request a week for the weekly key (at most 60 a year).
    per_year = year.pull_requests(weekly) * 365 / DAYS
    assert per_year <= 60, per_year


# ---------------------------------------------------------------------------------------------
# The tests


def simulate(tmp_path: Path, monkeypatch, stack: str, days: int, *, engine=None, project=None, rng_seed=None,
             **options) -> tuple[Year, float]:
    project = project or copy_project(tmp_path / "project")
    engine = engine or Engine(project, stack)
    sim = Simulation(engine, project, stack, random.Random(seed() if rng_seed is None else rng_seed),
                     tmp_path, monkeypatch, **options)
    began, cpu = time.monotonic(), time.process_time()
    year = sim.run(days)
    year.late_deploy = sim.late_deploy
    year.cpu_seconds = time.process_time() - cpu
    return year, time.monotonic() - began


def report(year: Year, seconds: float) -> str:
    weekly = year.pull_requests("atlas-gateway")
    return (f"{year.stack}: {(year.end - year.start).days} days in {seconds:.0f}s"
            f" ({year.cpu_seconds:.0f}s CPU): {year.runs} autopilot runs, {len(year.changes)} pull"
            f" requests ({weekly} for atlas-gateway), {len(year.person)} by a person,"
            f" {len(year.deployments)} deployments (seed {seed()})")


def test_a_year_on_the_dev_stack(tmp_path, monkeypatch, capsys):
    year, seconds = simulate(tmp_path, monkeypatch, "dev", DAYS)
    check_year(year, "atlas-gateway")
    with capsys.disabled():
        print("\n" + report(year, seconds))
    assert year.cpu_seconds < BUDGET_SECONDS


@pytest.mark.slow
def test_a_year_on_the_staging_stack(tmp_path, monkeypatch, capsys):
    from tests.kms_emulators import Clouds, cloud_servers

    project = copy_project(tmp_path / "project")
    with cloud_servers() as servers:
        engine = Clouds(servers, gcp_project="aether-staging").engine(project, "staging")
        year, seconds = simulate(tmp_path, monkeypatch, "staging", DAYS, engine=engine, project=project)
    check_year(year, "atlas-gateway")
    with capsys.disabled():
        print("\n" + report(year, seconds))
    assert year.cpu_seconds < BUDGET_SECONDS


def test_skipping_the_hours_autopilot_calls_idle_changes_nothing(tmp_path, monkeypatch):
    """The same 10 days, the same seed: autopilot at every hour, and only at the hours it names
    (nextDueAt, the next deployment) make the same changes at the same times."""
    days = 10
    hourly, _ = simulate(tmp_path / "hourly", monkeypatch, "dev", days, rng_seed=7, hourly=True)
    skipping, _ = simulate(tmp_path / "skipping", monkeypatch, "dev", days, rng_seed=7)
    assert hourly.runs == days * 24 and skipping.runs < hourly.runs / 4
    assert [t for t, _ in hourly.changes] == [t for t, _ in skipping.changes] and len(hourly.changes) >= 2
    def steps(year: Year) -> list:
        return [(t, [{**s, "why": s["why"].replace(str(year.path.parents[1]), "")} for s in steps])
                for t, steps in year.changes]

    assert steps(hourly) == steps(skipping) and hourly.person == skipping.person
    assert [t for t, _ in hourly.deployments] == [t for t, _ in skipping.deployments]
    assert hourly.path.read_text() == skipping.path.read_text()


def test_a_deployment_later_than_the_slack_makes_it_wait_never_cut_corners(tmp_path, monkeypatch):
    """The first promote of the weekly key is deployed three days late (the slack is one day):
    autopilot takes no step of that keyset that needs the deployment until it happened, and then
    only after the overlap; no verifier rejects anything."""
    delay = timedelta(days=3)

    def promotes_gateway(steps: list[dict]) -> bool:
        return any(s["keyset"] == "atlas-gateway" and s["command"] == "promote" for s in steps)

    year, _ = simulate(tmp_path, monkeypatch, "dev", 30,
                       late=(promotes_gateway, int(delay.total_seconds() // 60)))
    late_at = next(t for t, steps in year.changes if promotes_gateway(steps))
    assert year.late_deploy is not None and year.late_deploy == late_at + delay
    gateway = [(t, steps) for t, steps in year.changes if any(s["keyset"] == "atlas-gateway" for s in steps)]
    after = [t for t, _ in gateway if t > late_at]
    overlap = year.initial.keysets["atlas-gateway"].timings.overlap
    assert after and min(after) >= year.late_deploy + overlap
    promoted = next(s["generation"] for t, steps in year.changes if t == late_at for s in steps
                    if s["keyset"] == "atlas-gateway" and s["command"] == "promote")
    stack = load_stack_file(year.path)
    old = next(g for g in stack.keysets["atlas-gateway"].generations
               if g.retiring_at == late_at and g.id != promoted)
    assert old.retired_at is not None and old.retired_at >= year.late_deploy + overlap
    recs = records(year.outputs, stack, "simulation outputs")
    for item in schedule.plan(stack, year.end, recs):
        assert simulated(year, item.unintended_gaps) == []
    assert brute_force_rejections(year, "atlas-gateway") == {}
    # The verifiers would have seen the corner cut: the old key unpublished 10 minutes after the
    # late deployment, instead of after the overlap.
    cut = next(i for i, (at, _) in enumerate(year.deployments) if at == year.late_deploy)
    at, states = year.deployments[cut]
    early = {**states, "atlas-gateway": {**states["atlas-gateway"], old.id: "retired"}}
    corner = Year(year.stack, year.path, year.start, year.end, year.initial, deployments=[
        *year.deployments[:cut + 1], (at + timedelta(minutes=10), early), *year.deployments[cut + 1:]],
        outputs=year.outputs)
    assert list(brute_force_rejections(corner, "atlas-gateway")) == [old.id]
    # The only key in use past maxAgeDays is the one whose replacement was deployed late, by at
    # most the time the deployment exceeded the slack.
    t = year.initial.keysets["atlas-gateway"].timings
    for generation, began, ended in deployed_periods(year, "atlas-gateway"):
        if generation == old.id:
            assert ended - began <= t.max_age + delay - timedelta(hours=year.initial.autopilot.slack_hours)
        else:
            assert ended - began <= t.max_age


@pytest.mark.property
@pytest.mark.skipif(os.environ.get("HYPOTHESIS_PROFILE") != "long",
                    reason="the long variant (random seeds) runs in the nightly property job"
                           " (scripts/test-long.sh)")
@pytest.mark.parametrize("run", range(3))
def test_a_year_on_the_dev_stack_with_random_seeds(tmp_path, monkeypatch, run):
    chosen = random.SystemRandom().randrange(2**32)
    year, _ = simulate(tmp_path, monkeypatch, "dev", DAYS, rng_seed=chosen)
    try:
        check_year(year, "atlas-gateway")
    except AssertionError as error:
        raise AssertionError(
            f"seed {chosen} (AUTOPILOT_YEAR_SEED={chosen} reproduces it): {error}") from error

"""Sizing to the machine: each container's CPU and memory limits and reservations.

What each service wants follows from the capacity (calls, worker replicas and
concurrency, the WebRTC edge); the host (`host.cpus`, `host.memory`, defaults per
host kind in hostkinds.py) caps it:

- no limit exceeds the host: a `cpus` limit above the CPUs the engine has is refused
  by dockerd ("Range of CPUs is from 0.01 to 1.00, as there are only 1 CPUs
  available"), a memory limit above what the host has protects nothing;
- the reservations are what the stack needs to run at all; together with the
  docker-proxy processes of the published ports (costs.py) and what the system
  keeps for itself they must fit in host.memory, and the CPU reservations in
  host.cpus, or the profile is refused (`fit_problem`, exit 2) with the numbers
  and the ways out.

The per-service figures are estimates for the OmniVoIP components (docs/capacity.md,
section "Sizing to the machine"); they are defined here and nowhere else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from omnigen.catalog import hostkinds
from omnigen.catalog.services import Feature, Want, catalog, runs_with
from omnigen.inputs.profile import MEMORY_PATTERN, Profile
from omnigen.plan.capacity import PortPlan, port_plan
from omnigen.search import most_that_fits

# The kernel, dockerd, containerd, sshd and page cache the host keeps for itself.
SYSTEM_MEMORY_MIB = 256
# dockerd refuses a NanoCPUs value below 0.01 CPU.
MIN_CPUS = 0.01

_MEMORY = re.compile(MEMORY_PATTERN)


def memory_mib(text: str) -> int:
    """`host.memory` in MiB: M/MB/MiB are MiB and G/GB/GiB are GiB, as Docker reads them."""
    match = _MEMORY.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size such as 2G or 1536M")
    number = int(text.rstrip("MGiB"))
    return number * 1024 if text.rstrip("iB").endswith("G") else number


# The wants of services that do not depend on the capacity are their catalog entries' `resources`
# (catalog/services.py). Limits are what a busy service may use; reservations what it needs idle
# plus its share of the work. These grow with the calls or the workers' concurrency:


def asterisk_want(calls: int) -> Want:
    # Asterisk bridging G.711/Opus without transcoding: about 4 MiB and 1/250 of a core per call under load,
    # 2 MiB per call resident; 96 MiB and a tenth of a core idle with the modules OmniVoIP loads.
    reserved = round(0.1 + calls / 250, 2)
    return Want(512 + 4 * calls, 96 + 2 * calls, max(2.0, math.ceil(reserved * 1.5)), reserved, 1024 + 4 * calls)


def celery_worker_want(concurrency: int) -> Want:
    # Prefork: one Django process per unit of concurrency, about 40 MiB each at rest beside the parent's 48.
    return Want(max(512, 128 * concurrency), 48 + 40 * concurrency, 1.0, 0.05, 256)


def kamailio_shm_mb(calls: int) -> int:
    """Dialogs, transactions and registrations live in shared memory: 16 MiB per 250 calls on a 64 MiB base."""
    return 64 + 16 * -(-calls // 250)


KAMAILIO_PKG_MB = 8


def kamailio_children(calls: int) -> int:
    return 4 if calls <= 200 else 8


def rtpengine_threads(calls: int) -> int:
    # rtpengine defaults to one thread per host core, not per CPU it is allowed.
    return 2 if calls <= 200 else 4


def kamailio_want(calls: int) -> Want:
    # Shared memory + private memory of each process (UDP and TCP children plus ~8 helpers).
    memory = kamailio_shm_mb(calls) + (2 * kamailio_children(calls) + 8) * KAMAILIO_PKG_MB + 32
    return Want(memory, kamailio_shm_mb(calls) + 32, 1.0, 0.05, 256)


def rtpengine_want(calls: int) -> Want:
    # Userspace forwarding (table = -1): about 1/500 of a core per call.
    threads = rtpengine_threads(calls)
    return Want(128 + calls // 2, 64 + calls // 4, threads / 2, round(0.02 + calls / 500, 2), 128 + 8 * threads)


@dataclass(frozen=True)
class HostSize:
    cpus: float
    memory_mib: int
    # Where each figure came from: the profile key, or the host kind's default.
    cpus_source: str
    memory_source: str


def host_size(profile: Profile) -> HostSize:
    host = profile.host
    facts = hostkinds.facts(host.kind)
    default = f"default for host.kind {host.kind}"
    return HostSize(
        cpus=facts.default_cpus if host.cpus is None else host.cpus,
        memory_mib=facts.default_memory_mib if host.memory is None else memory_mib(host.memory),
        cpus_source=default if host.cpus is None else "host.cpus",
        memory_source=default if host.memory is None else "host.memory",
    )


@dataclass(frozen=True)
class Size:
    """One service's resources after capping, per replica."""

    replicas: int
    memory_limit_mib: int
    memory_reservation_mib: int
    cpus_limit: float
    cpus_reservation: float
    pids: int


def cap_cpus(wanted: float, host_cpus: float) -> float:
    """The CPUs dockerd will accept: at most the host's, at least 0.01, in hundredths (rounded down)."""
    return max(MIN_CPUS, math.floor(min(wanted, host_cpus) * 100 + 1e-9) / 100)


def format_cpus(cpus: float) -> str:
    """`2.0`, `0.5`, `0.25`: one decimal at least, as compose files usually write it."""
    text = f"{cpus:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


@dataclass(frozen=True)
class Sizing:
    host: HostSize
    services: dict[str, Size]
    docker_proxy_mib: float
    system_mib: int

    def _total(self, attribute: str) -> float:
        return float(sum(getattr(size, attribute) * size.replicas for size in self.services.values()))

    @property
    def containers(self) -> int:
        return sum(size.replicas for size in self.services.values())

    @property
    def memory_limits_mib(self) -> int:
        return int(self._total("memory_limit_mib"))

    @property
    def memory_reservations_mib(self) -> int:
        return int(self._total("memory_reservation_mib"))

    @property
    def cpus_limits(self) -> float:
        return round(self._total("cpus_limit"), 2)

    @property
    def cpus_reservations(self) -> float:
        return round(self._total("cpus_reservation"), 2)

    @property
    def memory_needed_mib(self) -> int:
        """Reservations + docker-proxy + the system's own: what the host must have."""
        return math.ceil(self.memory_reservations_mib + self.docker_proxy_mib + self.system_mib)

    @property
    def memory_fits(self) -> bool:
        return self.memory_needed_mib <= self.host.memory_mib

    @property
    def cpus_fit(self) -> bool:
        return self.cpus_reservations <= self.host.cpus + 1e-9


def profile_features(profile: Profile) -> frozenset[Feature]:
    """The optional parts a profile switches on (catalog/services.Feature)."""
    found: set[Feature] = set()
    if profile.tls.mode == "acme":
        found.add("acme")
    if profile.components.webrtc:
        found.add("webrtc")
    return frozenset(found)


def wants(profile: Profile, calls: int | None = None) -> dict[str, tuple[int, Want]]:
    """(replicas, want) of every service the profile runs; `calls` overrides a voice host's share."""
    calls = profile.capacity.concurrent_calls if calls is None else calls
    workers = profile.workers
    scaled: dict[str, Callable[[], Want]] = {
        "asterisk": lambda: asterisk_want(calls),
        "celery-worker": lambda: celery_worker_want(workers.celery_concurrency),
        "kamailio": lambda: kamailio_want(calls),
        "rtpengine": lambda: rtpengine_want(calls),
    }
    features = profile_features(profile)
    found: dict[str, tuple[int, Want]] = {}
    for entry in catalog():
        if not runs_with(entry, features):
            continue
        want = scaled[entry.name]() if entry.name in scaled else entry.resources
        assert want is not None, f"the catalog gives {entry.name} no resources and sizing.py does not compute them"
        found[entry.name] = (getattr(workers, entry.replicas) if entry.replicas else 1, want)
    return dict(sorted(found.items()))


def size(profile: Profile, docker_proxy_mib: float, calls: int | None = None) -> Sizing:
    host = host_size(profile)
    # A limit never exceeds what is left once the system and docker-proxy have theirs,
    # and never falls below the reservation (dockerd refuses a reservation above the limit).
    room = max(1, int(host.memory_mib - SYSTEM_MEMORY_MIB - docker_proxy_mib))
    services = {
        name: Size(
            replicas=replicas,
            memory_limit_mib=max(want.memory_reservation_mib, min(want.memory_limit_mib, room)),
            memory_reservation_mib=want.memory_reservation_mib,
            cpus_limit=cap_cpus(want.cpus_limit, host.cpus),
            cpus_reservation=cap_cpus(min(want.cpus_reservation, want.cpus_limit), host.cpus),
            pids=want.pids,
        )
        for name, (replicas, want) in wants(profile, calls).items()
    }
    return Sizing(host, services, docker_proxy_mib, SYSTEM_MEMORY_MIB)


def _most_calls_that_fit(profile: Profile, docker_proxy_mib: Callable[[int], float]) -> int:
    """The largest concurrent_calls whose reservations fit, with their own docker-proxy cost (0 if one call does not)."""

    def fits(calls: int) -> bool:
        sized = size(profile, docker_proxy_mib(calls), calls)
        return sized.memory_fits and sized.cpus_fit

    # fits(concurrent_calls) does not hold when this is called.
    return most_that_fits(1, profile.capacity.concurrent_calls, fits) if fits(1) else 0


@dataclass(frozen=True)
class FitProblem:
    key: str  # host.memory or host.cpus
    message: str
    # True when the profile set the key: the stack cannot fit the machine it describes (exit 2). False when
    # the figure is the host kind's default: existing profiles keep building, with a warning.
    declared: bool


def fit_problem(profile: Profile, docker_proxy_mib: Callable[[int], float]) -> FitProblem | None:
    """Why the stack cannot fit the host (with the numbers and the ways out), or None.

    `docker_proxy_mib(calls)` is the docker-proxy memory of the ports that many calls publish.
    """
    calls = profile.capacity.concurrent_calls
    proxy = docker_proxy_mib(calls)
    sized = size(profile, proxy)
    if sized.memory_fits and sized.cpus_fit:
        return None
    host = sized.host
    most = _most_calls_that_fit(profile, docker_proxy_mib)
    ways = []
    if most >= 1:
        ways.append(f"lower capacity.concurrent_calls to at most {most}")
    ways.append("run fewer workers (workers.celery, workers.dialer, workers.celery_concurrency)")
    ways.append("split the stack over several hosts ([[hosts]], docs/multi-host.md)")
    if not sized.memory_fits:
        needed_gib = sized.memory_needed_mib / 1024
        return FitProblem("host.memory", (
            f"{calls} calls on this stack need at least {sized.memory_needed_mib} MiB: memory reservations of "
            f"{sized.containers} containers {sized.memory_reservations_mib} MiB + docker-proxy {proxy:.0f} MiB + "
            f"{sized.system_mib} MiB for the system, but the host has {host.memory_mib} MiB ({host.memory_source}); "
            f"give the host more memory and set host.memory (at least {math.ceil(needed_gib * 4) / 4:g}G), or "
            + ", or ".join(ways)
        ), profile.host.memory is not None)  # fmt: skip
    return FitProblem("host.cpus", (
        f"{calls} calls on this stack need {sized.cpus_reservations:g} CPUs reserved across "
        f"{sized.containers} containers, but the host has {host.cpus:g} ({host.cpus_source}); "
        f"give the host more CPUs and set host.cpus (at least {math.ceil(sized.cpus_reservations):d}), or " + ", or ".join(ways)
    ), profile.host.cpus is not None)  # fmt: skip


def docker_proxy_for(profile: Profile, layout: PortPlan) -> Callable[[int], float]:
    """docker-proxy memory (MiB) of the ports this profile publishes with `calls` concurrent calls (costs.py).

    `layout` is the profile's own port plan: its calls cost what it publishes; other counts
    (the search for the most calls that fit) are laid out for the question."""
    proxy = hostkinds.effective_userland_proxy(profile.host.kind, profile.host.userland_proxy)

    def memory(calls: int) -> float:
        if calls == profile.capacity.concurrent_calls:
            return float(layout.cost(proxy).memory_mib)
        shaped = profile.model_copy(update={"capacity": profile.capacity.model_copy(update={"concurrent_calls": calls})})
        return float(port_plan(shaped).cost(proxy).memory_mib)

    return memory


DEFAULT_SIZE_HINT = (
    "the host's size is the host kind's default, not the machine's: set host.cpus and host.memory to what it has "
    "(`omnigen doctor PROFILE` reads them), and omnigen refuses a stack that cannot fit"
)

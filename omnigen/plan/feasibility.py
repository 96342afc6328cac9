"""Can a valid profile be deployed? The checks that need the port layout, the host's size or the placement.

The profile model (profile.py) validates what its tables say; whether the ports fit the
port space and the host kind's budget (capacity.py), whether the stack fits the host
(sizing.py) and whether [[hosts]] can carry the roles (placement.py) is answered here,
on the valid profile, in that order. The answer is the first problem (or the first
problems found in one pass, such as every refused low port), keyed by the profile key to
change (the loader places each at that key's line), or the Layout it computed: the plan
prints that same layout, so `port_plan` runs once per build.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnigen.errors import KeyedProblem
from omnigen.inputs.profile import Profile
from omnigen.plan.capacity import (
    CapacityError,
    CapacityProblems,
    HostPorts,
    PortPlan,
    RtpRange,
    budget_problem,
    host_budget_problem,
    host_port_plan,
    port_plan,
    shared_address_problem,
)
from omnigen.plan.placement import placement_problems
from omnigen.plan.sizing import FitProblem, docker_proxy_for, fit_problem


@dataclass(frozen=True)
class Layout:
    """A feasible profile's published ports: the one layout the plan prints."""

    ports: PortPlan | None  # a single host's; None with [[hosts]]
    hosts: tuple[HostPorts, ...]  # each of [[hosts]], in profile order; () for a single host
    # The stack does not fit the host kind's default size (host.cpus/host.memory not set): the plan
    # warns (profiles from before those keys keep building); a declared size that does not fit is a problem.
    default_size_misfit: FitProblem | None = None

    @property
    def single(self) -> PortPlan:
        """The single-host layout (the caller knows the profile has no [[hosts]])."""
        assert self.ports is not None, "a multi-host profile has one layout per host"
        return self.ports

    @property
    def first_rtp(self) -> RtpRange:
        """The Asterisk RTP range the plan's `rtp` is: the single host's, or the first voice host's with [[hosts]]."""
        if self.ports is not None:
            return self.ports.ranges["asterisk"]
        return next(ports.bundle.ranges["asterisk"] for ports in self.hosts if "asterisk" in ports.bundle.ranges)


Problems = tuple[KeyedProblem, ...]  # never empty


class Infeasible(Exception):
    """A profile the model accepted but that cannot be deployed (the loader reports it with positions, exit 2)."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{problem.key}: {problem.message}" for problem in problems))


def check(profile: Profile) -> Layout | Problems:
    """The profile's layout, or why it cannot be deployed."""
    try:
        found = _multi_host(profile) if profile.hosts else _single_host(profile)
    except CapacityProblems as refusals:
        return refusals.problems
    except CapacityError as error:
        return (error.problem,)
    return (found,) if isinstance(found, KeyedProblem) else found


def layout(profile: Profile) -> Layout:
    """The profile's layout; raises Infeasible when check() finds a problem."""
    found = check(profile)
    if not isinstance(found, Layout):
        raise Infeasible(found)
    return found


def _single_host(profile: Profile) -> Layout | KeyedProblem:
    # Every range and port placed without overlap inside 1024-65535, then the total held against
    # the host kind's port budget, then the stack against the host's size.
    ports = port_plan(profile)
    if problem := budget_problem(profile, ports):
        return problem
    unfit = fit_problem(profile, docker_proxy_for(profile, ports))
    if unfit is not None and unfit.declared:
        return KeyedProblem(unfit.key, unfit.message)
    return Layout(ports, (), unfit)


def _multi_host(profile: Profile) -> Layout | KeyedProblem:
    # The placement of the roles, then each host's port layout and budget, then the public addresses hosts share.
    for misplaced in placement_problems(profile):
        return misplaced
    hosts = tuple(host_port_plan(profile, index) for index in range(len(profile.hosts)))
    for ports in hosts:
        if over_budget := host_budget_problem(profile, ports):
            return over_budget
    if shared := shared_address_problem(profile, {ports.host: ports for ports in hosts}):
        return shared
    return Layout(None, hosts)

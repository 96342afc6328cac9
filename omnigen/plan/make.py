"""Stage 2's entry: the plan of a profile, one host or several ([[hosts]]).

plan.py plans a single host and holds what every plan is made of; cluster.py plans
stack.yml and one bundle per host from the same parts. Both print the layout the loader
checked (feasibility.py), passed in so that the ports are laid out once per build.
make_topology is the same plan without secrets, for the commands that print a plan but write
nothing (explain, doctor): no secret is generated, read or made up for them.
"""

from __future__ import annotations

from omnigen.inputs.profile import Profile, Secrets
from omnigen.plan import feasibility
from omnigen.plan.feasibility import Layout
from omnigen.plan.plan import Plan, make_single_plan


def make_plan(profile: Profile, secrets: Secrets | None, checked: Layout | None = None, checkout: str | None = None) -> Plan:
    """Compute everything the templates print. Without `checked` the layout is computed here
    (an infeasible profile then raises feasibility.Infeasible). `checkout` is build.source as the
    output folder sees it (pipeline.build computes it); without it the output folder is taken to be
    the profile's own. `secrets` None: make_topology."""
    checked = checked or feasibility.layout(profile)
    if profile.hosts:
        # Single-host builds never load the multi-host planner: it is a cold start's own time.
        from omnigen.plan.cluster import make_cluster_plan

        return make_cluster_plan(profile, secrets, checked, checkout)
    return make_single_plan(profile, secrets, checked, checkout)


def make_topology(profile: Profile, checked: Layout | None = None) -> Plan:
    """What runs where, its addresses, ports, images, limits, firewall and warnings: the plan without
    a secret in it (secret .env variables and Asterisk logins left out), from the same code as
    make_plan so that no fact is computed twice. render refuses it."""
    return make_plan(profile, None, checked)

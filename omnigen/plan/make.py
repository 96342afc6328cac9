"""Stage 2's entry: the plan of a profile, one host or several ([[hosts]]).

plan.py plans a single host and holds what every plan is made of; cluster.py plans
stack.yml and one bundle per host from the same parts. Both print the layout the loader
checked (feasibility.py), passed in so that the ports are laid out once per build.
"""

from __future__ import annotations

from omnigen.inputs.profile import Profile, Secrets
from omnigen.plan import feasibility
from omnigen.plan.feasibility import Layout
from omnigen.plan.plan import Plan, make_single_plan


def make_plan(profile: Profile, secrets: Secrets, checked: Layout | None = None, checkout: str | None = None) -> Plan:
    """Compute everything the templates print. Without `checked` the layout is computed here
    (an infeasible profile then raises feasibility.Infeasible). `checkout` is build.source as the
    output folder sees it (pipeline.build computes it); without it the output folder is taken to be
    the profile's own."""
    checked = checked or feasibility.layout(profile)
    if profile.hosts:
        # Single-host builds never load the multi-host planner: it is a cold start's own time.
        from omnigen.plan.cluster import make_cluster_plan

        return make_cluster_plan(profile, secrets, checked, checkout)
    return make_single_plan(profile, secrets, checked, checkout)

"""Stage 4: verify. Parse the rendered files back and hold them to the rules and to the plan.

`bundle.py` verifies a single-host build (and each host's bundle of a multi-host one);
`cluster.py` adds stack.yml and the invariants across hosts. Any finding is an omnigen bug:
VerifyError (exit 3), nothing written. `deployment.py` (the one compose loader) and `rules/` are
shared with lint and import: this package's own imports stay lazy so they load without the plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omnigen.plan.plan import Plan
    from omnigen.verify.deployment import Deployment


def verify(plan: Plan, files: dict[str, str]) -> Deployment:
    """Verify a build's rendered files. Returns the Deployment they make (the stack's with [[hosts]]); raises VerifyError."""
    if plan.cluster is not None:
        # Single-host builds never load the multi-host checks: they are a cold start's own time.
        from omnigen.verify.cluster import verify_cluster

        return verify_cluster(plan, files)
    from omnigen.verify.bundle import verify_bundle

    return verify_bundle(plan, files)

"""What counts as a placeholder secret (CHANGE_ME and friends).

One pattern for both sides: the secrets sidecar refuses it (exit 2), and lint's
OV208 reports it in hand-written deployments, so a secret omnigen accepts can
never fail its own verify stage.
"""

from __future__ import annotations

import re

PLACEHOLDER_PATTERN = re.compile(
    r"change[_-]?(me|this|it)|your[_-]|replace[_-]?(me|this)|placeholder|insecure|^x{3,}$|^<[^>]*>$|^(password|secret|changeme|todo|tbd)$",
    re.I,
)

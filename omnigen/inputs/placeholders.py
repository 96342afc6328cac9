"""What counts as a placeholder secret (CHANGE_ME and friends).

One pattern for both sides: the secrets sidecar refuses it (exit 2), and lint's
OV208 reports it in hand-written deployments, so a secret omnigen accepts can
never fail its own verify stage.
"""

from __future__ import annotations

import re

# Whole values that are published defaults, not secrets: MinIO's built-in root password, and
# what OmniVoIP's own example files ship (components/*/.env.example: the backend's database
# password, the AMI/ARI and dialer secrets), which v2 sites copied.
PUBLISHED_DEFAULTS = ("minioadmin", "admin", "omnivoip", "dialerpass123")

PLACEHOLDER_PATTERN = re.compile(
    r"change[_-]?(me|this|it)|your[_-]|replace[_-]?(me|this)|placeholder|insecure|^x{3,}$|^<[^>]*>$|^(password|secret|changeme|todo|tbd)$"
    rf"|^({'|'.join(PUBLISHED_DEFAULTS)})$",
    re.I,
)

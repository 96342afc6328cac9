"""Stage 1, what a build is given: the profile (model, TOML positions, OMNIGEN_* overrides, format
upgrades, JSON Schema), its secrets and its certificate. Imports nothing from the stages above."""

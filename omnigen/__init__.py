"""omnigen: compile one OmniVoIP profile into a consistent Docker Compose deployment."""

__version__ = "0.1.0"

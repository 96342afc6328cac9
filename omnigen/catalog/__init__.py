"""The catalog: facts about the deployment that do not depend on any profile.

The bottom layer of the package (pyproject's [tool.importlinter]): the profile model, the
plan, the templates' plan values, the verify stage and the lint rules all read their facts
from here, so each is written once. docs/architecture.md lists where each fact lives.
"""

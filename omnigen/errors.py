"""The one error hierarchy. Every error a user can see carries its exit code.

Messages follow `PATH: key.path: what is wrong (got X); what to do`, with the
TOML line (`PATH:LINE:`, or `PATH:LINE:COLUMN:` for TOML syntax) when it is known.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class OmnigenError(Exception):
    """Base of every error omnigen reports to a user."""

    exit_code = EXIT_INTERNAL

    def render(self) -> str:
        return str(self)


class UsageError(OmnigenError):
    """The command line itself is wrong (missing file, bad option)."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class KeyedProblem:
    """Why a valid profile cannot be deployed, about one profile key ("hosts.1.calls").

    The plan layer finds these (feasibility.py); the loader, which has the file, places them:
    an InputIssue at the key's line, or at the environment variable that set it.
    """

    key: str  # a dotted profile key; its parts never contain a dot
    message: str

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


class InputIssue:
    """One problem in an input file, located as precisely as we can."""

    __slots__ = ("column", "file", "got", "hint", "key", "line", "message")

    def __init__(
        self,
        file: str,
        key: str,
        message: str,
        *,
        line: int | None = None,
        got: str | None = None,
        hint: str | None = None,
        column: int | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
        self.got = got
        self.hint = hint

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where += f":{self.column}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        if self.got is not None:
            text += f" (got {self.got})"
        if self.hint:
            text += f"; {self.hint}"
        return text


class ProfileError(OmnigenError):
    """The profile, its secrets sidecar or an environment override is invalid."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, issues: list[InputIssue]) -> None:
        self.issues = issues
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(issue.render() for issue in self.issues)


class OutputError(OmnigenError):
    """The output folder cannot be written safely (symlink, edited file, escape).

    `folder_changed` is True only when a failed write could not undo all it did:
    the folder may then hold files with the secrets of this build.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, folder_changed: bool = False) -> None:
        super().__init__(message)
        self.folder_changed = folder_changed


class InputFileError(OmnigenError):
    """An input file omnigen refuses to read: not a regular file (a FIFO would hang, /dev/zero never ends) or too large."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: str, what: str, problem: str, hint: str) -> None:
        self.path = path
        self.what = what
        self.problem = problem  # "is a FIFO (named pipe), not a regular file"
        self.hint = hint
        super().__init__(self.render())

    @property
    def message(self) -> str:
        return f"{self.what} {self.problem}"

    def render(self) -> str:
        return f"{self.path}: {self.message}; {self.hint}"


class VerifyError(OmnigenError):
    """Rendered output broke an invariant: a bug in omnigen, never the user's fault."""

    exit_code = EXIT_INTERNAL

    def __init__(self, findings: list[str]) -> None:
        self.findings = findings
        super().__init__(self.render())

    def render(self) -> str:
        lines = ["internal error: the generated deployment failed verification; nothing was written."]
        lines += [f"  {finding}" for finding in self.findings]
        lines.append("Please report this with the profile that caused it.")
        return "\n".join(lines)


class DeploymentInputError(OmnigenError):
    """`omnigen lint` cannot judge its input at all: no compose file, unreadable or invalid YAML, bad .env."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, issues: list[InputIssue]) -> None:
        self.issues = issues
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(issue.render() for issue in self.issues)

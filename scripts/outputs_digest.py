"""Digest of everything omnigen prints for every profile it knows, to prove a refactor changes no byte.

For each example profile (profiles/*.toml) and each profile of the test corpus
(tests/fuzz_corpus/, tests/migrations/), with every generated secret from the tests'
deterministic token factory:
  - the sha256 of every output file `build` would write (compile_profile), or the error text
    (with its positions) when the profile is refused;
  - `omnigen explain --format json` and `omnigen explain` (plain text): exit code, stdout and stderr;
  - for the example profiles, `omnigen doctor --format json` against an empty root (the profile's
    port and shell-environment probes);
and once: `omnigen schema` and `omnigen schema --format markdown`, and `omnigen lint --format json`
of every case of tests/lint_corpus/.

    .venv/bin/python scripts/outputs_digest.py > before.txt
    ... change the code ...
    .venv/bin/python scripts/outputs_digest.py | diff before.txt -

Not a test: the syrupy snapshots pin a few profiles' outputs; this covers every corpus profile
(including the refused ones and their messages) in one run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS_FOLDERS = ("profiles", "tests/fuzz_corpus/profile-bytes", "tests/fuzz_corpus/profile-values", "tests/fuzz_corpus/seeds", "tests/migrations")


def fake_token(name: str) -> str:
    """tests/conftest.py's fake_token: deterministic, URL-safe, 32 characters."""
    return (name.replace("_", "-") + "-" + "0123456789abcdefghijklmnopqrstuv")[:32]


def digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def run_cli(*args: str) -> tuple[int, str, str]:
    from omnigen.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def profiles() -> list[Path]:
    found: list[Path] = []
    for folder in CORPUS_FOLDERS:
        found += sorted(path for path in (ROOT / folder).rglob("*.toml") if not path.name.endswith(".secrets.toml"))
    return found


def build_lines(path: Path) -> list[str]:
    from omnigen.errors import OmnigenError
    from omnigen.pipeline import compile_profile

    try:
        from omnigen.inputs.profile import Secrets
    except ImportError:  # before the stages became folders
        from omnigen.profile import Secrets  # type: ignore[no-redef,import-not-found,import-untyped,unused-ignore]
    try:
        from omnigen.loading import load_profile
    except ImportError:  # before issue 15 the model validators checked feasibility
        from omnigen.profile import load_profile  # type: ignore[no-redef,import-not-found,import-untyped,unused-ignore]

    name = path.relative_to(ROOT)
    try:
        compiled = compile_profile(load_profile(path, {}), Secrets(), fake_token)
    except OmnigenError as error:
        return [f"{name} build refused exit={error.exit_code} {digest(error.render().replace(str(ROOT), '<root>'))}"]
    return [f"{name} build {relative} {digest(text)}" for relative, text in sorted(compiled.files.items())]


def cli_line(path: Path, *argv: str) -> str:
    code, out, err = run_cli(*argv)
    return f"{path.relative_to(ROOT)} {' '.join(argv[:1] + argv[2:])} exit={code} out={digest(out)} err={digest(err.replace(str(ROOT), '<root>'))}"


def explain_lines(path: Path) -> list[str]:
    return [cli_line(path, "explain", str(path), "--format", "json"), cli_line(path, "explain", str(path))]


def doctor_line(path: Path, root: Path) -> str:
    """doctor against an empty root (no commands run): the profile probes' answers and texts."""
    return cli_line(path, "doctor", str(path), "--root", str(root), "--format", "json").replace(str(root), "<empty>")


def lint_lines() -> list[str]:
    cases = sorted(folder for folder in (ROOT / "tests" / "lint_corpus").glob("*/*") if folder.is_dir())
    return [cli_line(case, "lint", str(case), "--format", "json") for case in cases]


def main() -> int:
    lines: list[str] = []
    for argv in (("schema",), ("schema", "--format", "markdown")):
        code, out, err = run_cli(*argv)
        lines.append(f"omnigen {' '.join(argv)} exit={code} out={digest(out)} err={digest(err)}")
    with tempfile.TemporaryDirectory() as empty:
        for path in profiles():
            lines += build_lines(path)
            lines += explain_lines(path)
            if path.is_relative_to(ROOT / "profiles"):
                lines.append(doctor_line(path, Path(empty)))
    lines += lint_lines()
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

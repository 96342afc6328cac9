"""The fuzz harness: one input through `omnigen build` as users run it, and every invariant after.

An input is raw profile bytes plus optional raw sidecar bytes. `run_input` runs
`omnigen build PROFILE -o OUT` in-process (the CLI's own error handling, so an
escaped exception shows up as exit 3) on a folder that already holds an earlier
build, under an alarm that turns a hang into a failure. Then:

- exit 0: the manifest proves the folder current, `omnigen check` agrees (exit 0),
  every secret in the sidecar reached .env unchanged, and (for a sample) the real
  Compose accepts the folder with `config -q`;
- exit 2: a message on stderr, no traceback, and the output folder is byte for
  byte what it was (no partial write);
- anything else (exit 3, a hang, an exception): a failure with the input shown.

Used by tests/test_fuzz.py (bounded, in `make test`) and `make fuzz` (long).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import signal
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import tomlkit
from hypothesis import strategies as st

from omnigen.cli import main
from omnigen.formats import dotenv
from omnigen.inputs.fingerprint import fingerprint, tls_source_bytes
from omnigen.inputs.profile import SECRET_NAMES
from omnigen.write.outputs import recorded_files_match
from tests.conftest import EXAMPLES, ROOT, fake_token, make_fake_checkout, run_compose
from tests.faults import photograph

CORPUS = ROOT / "tests" / "fuzz_corpus"
CORPUS_LIMIT = 60  # inputs per target: the corpus is replayed on every test run
HANG_SECONDS = 30
# .env keys of the secrets a sidecar sets (webrtc_auth_secret only reaches .env with components.webrtc).
SECRET_ENV_KEYS = {
    "postgres_password": "POSTGRES_PASSWORD",
    "redis_password": "REDIS_PASSWORD",
    "minio_root_password": "MINIO_ROOT_PASSWORD",
    "django_secret_key": "DJANGO_SECRET_KEY",
    "django_admin_password": "DJANGO_SUPERUSER_PASSWORD",
    "ami_password": "ASTERISK_AMI_SECRET",
    "dialer_ami_password": "DIALER_AMI_SECRET",
    "ari_password": "ASTERISK_ARI_PASSWORD",
}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


@dataclass
class Stats:
    """What one fuzz target did; reported at the end of the test."""

    target: str
    executions: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    compose_checked: int = 0
    seconds: float = 0.0
    recorded: int = 0
    signatures: set[str] = field(default_factory=set)

    def line(self) -> str:
        spread = ", ".join(f"{name} {count}" for name, count in sorted(self.outcomes.items()))
        return (
            f"fuzz {self.target}: {self.executions} executions in {self.seconds:.1f} s ({spread}); "
            f"real Compose on {self.compose_checked} successful builds; {self.recorded} new corpus inputs"
        )


@dataclass(frozen=True)
class FuzzInput:
    profile: bytes
    sidecar: bytes | None


# --------------------------------------------------------------------------- strategies

EXAMPLE_BYTES = [path.read_bytes() for path in EXAMPLES]
# Tokens that matter to TOML, to our validators and to the output formats.
TOKENS = [
    b"\n", b"\r\n", b"\r", b"=", b'"', b"'", b'"""', b"'''", b"[", b"]", b"[[", b"]]", b"{", b"}", b",", b".", b"#",
    b"\\", b"\\u0000", b"\\n", b"\\u2028", b"\x00", b"\xff", b"\xc3", b"\xe2\x80\xa8", b" ", b"\t",
    b"0", b"-1", b"65535", b"65536", b"99999999999999999999999", b"1e999", b"inf", b"nan", b"-0", b"0x10", b"1_000",
    b"true", b"false", b"1979-05-27T07:32:00Z", b"[]", b"{}",
    b"host", b"latest", b"ipvlan", b"macvlan", b"0.0.0.0", b"127.0.0.1", b"203.0.113.1", b"10.0.0.0/8", b"::1",
    b"#include /etc/passwd", b";", b"${HOME}", b"$$", b"\ncapacity.concurrent_calls = 1\n", b"\n[project]\n",
    b"\nschema_version = 2\n", b"\nschema_version = 0\n", b"\n[components]\nwebrtc = true\n",
    b"\n[network]\nmode = \"ipvlan\"\n", b"\n[host]\nkind = \"rootless\"\n", b"\n[unknown]\nx = 1\n",
]


@st.composite
def mutated_profile(draw: st.DrawFn) -> bytes:
    """An example profile with a few byte-level edits: insert, delete, replace, splice tokens, shuffle lines."""
    data = bytearray(draw(st.sampled_from(EXAMPLE_BYTES)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "token", "line-dup", "line-swap", "truncate", "value"]))
        at = draw(st.integers(min_value=0, max_value=max(len(data), 1)))
        if op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(min_value=1, max_value=40))]
        elif op == "replace" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(min_value=0, max_value=255))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == "truncate":
            del data[at:]
        elif op in {"line-dup", "line-swap", "value"}:
            lines = bytes(data).split(b"\n")
            index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            if op == "line-dup":
                lines.insert(index, lines[index])
            elif op == "line-swap":
                other = draw(st.integers(min_value=0, max_value=len(lines) - 1))
                lines[index], lines[other] = lines[other], lines[index]
            elif b"=" in lines[index]:
                key = lines[index].split(b"=", 1)[0]
                lines[index] = key + b"= " + draw(toml_value_bytes())
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def toml_value_bytes() -> st.SearchStrategy[bytes]:
    """One TOML value, valid or not, as it would appear after `key = `."""
    return st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: str(n).encode()),
        st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).encode()),
        st.booleans().map(lambda b: str(b).lower().encode()),
        hostile_text().map(lambda s: tomlkit.string(s).as_string().encode("utf-8", "surrogatepass")),
        st.sampled_from(TOKENS),
        st.binary(max_size=12),
    )


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Text rich in the characters that break configuration formats, plus any other Unicode."""
    nasty = st.sampled_from(list("\n\r\t\x0b\x0c\x1e\x85\u2028\u2029\ufeff\u202e\"'\\$#;[]{}=:@/%?&`*!<> ,-.|~^"))
    return st.lists(
        st.one_of(nasty, st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), st.sampled_from(["${X}", "$$", "#include", "=>", "latest", "change-me", "SECRET", "<pw>", "todo", "insecure", "xxx"])),
        max_size=max_size,
    ).map("".join)


def toml_values(depth: int = 2) -> st.SearchStrategy[object]:
    scalars = st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False),
        st.booleans(),
        hostile_text(),
        st.sampled_from(["bridge", "host", "ipvlan", "vps", "rootless", "203.0.113.7", "10.1.0.0/24", "0.0.0.0", "redis:7.4.1-alpine", "eth0"]),
    )
    if depth == 0:
        return scalars
    return st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(KEYS), toml_values(depth - 1), max_size=3))


# Every key of every example profile, plus a few that do not exist.
KEYS = sorted(
    {key for data in (tomllib.loads(raw.decode()) for raw in EXAMPLE_BYTES) for table in data.values() if isinstance(table, dict) for key in table}
    | {key for raw in EXAMPLE_BYTES for key in tomllib.loads(raw.decode())}
    | {"extra", "Name", "mode ", "webrtc"}
)


@st.composite
def structured_profile(draw: st.DrawFn) -> bytes:
    """A valid example with some leaves replaced by random TOML values: reaches plan, render and verify."""
    data = tomllib.loads(draw(st.sampled_from(EXAMPLE_BYTES)).decode())
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        table = draw(st.sampled_from(sorted(data)))
        if isinstance(data[table], dict) and data[table] and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(data[table])))
            data[table][key] = draw(toml_values(1))
        elif draw(st.booleans()):
            data[table] = draw(toml_values(2))
        else:
            data.pop(table)
            if not data:
                break
    return tomlkit.dumps(data).encode("utf-8", "surrogatepass")


@st.composite
def secret_inputs(draw: st.DrawFn) -> FuzzInput:
    """A valid profile and a sidecar of random (often hostile) secret values, sometimes broken TOML."""
    profile = draw(st.sampled_from(EXAMPLE_BYTES))
    names = draw(st.lists(st.sampled_from(SECRET_NAMES), unique=True, max_size=len(SECRET_NAMES)))
    values = {name: draw(st.one_of(hostile_text(60), st.text(min_size=1, max_size=1100))) for name in names}
    document = tomlkit.document()
    for name, value in values.items():
        document[name] = value
    sidecar = tomlkit.dumps(document).encode("utf-8", "surrogatepass")
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        at = draw(st.integers(min_value=0, max_value=len(sidecar)))
        sidecar = sidecar[:at] + draw(st.sampled_from(TOKENS)) + sidecar[at:]
    return FuzzInput(profile, sidecar)


# --------------------------------------------------------------------------- running one input


class Hang(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def ring(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def clean_environment() -> Iterator[None]:
    """No OMNIGEN_* variable of the test run may leak into the builds."""
    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.upper().startswith("OMNIGEN_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), alarm(HANG_SECONDS):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


_baseline: Path | None = None


def baseline_output() -> Path:
    """An earlier build the fuzzed build writes over (built once per process)."""
    global _baseline
    if _baseline is None:
        folder = Path(tempfile.mkdtemp(prefix="omnigen-fuzz-baseline-"))
        make_fake_checkout(folder / "omnivoip")  # build.source = "../omnivoip", beside sites/
        profile = folder / "sites" / "base.toml"
        profile.parent.mkdir()
        profile.write_bytes((ROOT / "profiles" / "vps-nat.toml").read_bytes())
        secrets = tomlkit.document()
        for name in SECRET_NAMES:
            secrets[name] = fake_token(name)
        (profile.parent / "base.secrets.toml").write_text(tomlkit.dumps(secrets))
        code, _, err = cli("build", str(profile), "-o", str(folder / "out"))
        assert code == 0, err
        _baseline = folder / "out"
    return _baseline


def signature(code: int, err: str) -> str:
    """What kind of outcome this was, ignoring the particular values (for corpus novelty)."""
    first = err.strip().splitlines()[0] if err.strip() else ""
    first = re.sub(r"^\S*?(:\d+)?: ", "", first)  # the file and line
    first = re.sub(r"\(got .*", "", first)
    first = re.sub(r"[0-9]+", "N", first)
    first = re.sub(r"'[^']*'|\"[^\"]*\"", "S", first)
    return f"{code}:{first[:80]}"


def run_input(item: FuzzInput, stats: Stats, *, compose_every: int, record: bool = False) -> int:
    """Run one input and check every invariant; returns the exit code of build."""
    stats.executions += 1
    with tempfile.TemporaryDirectory(prefix="omnigen-fuzz-") as scratch, clean_environment():
        folder = Path(scratch)
        make_fake_checkout(folder / "omnivoip")  # build.source = "../omnivoip", beside sites/
        profile = folder / "sites" / "site.toml"
        profile.parent.mkdir()
        profile.write_bytes(item.profile)
        sidecar = profile.parent / "site.secrets.toml"
        if item.sidecar is not None:
            sidecar.write_bytes(item.sidecar)
        out = folder / "out"
        shutil.copytree(baseline_output(), out, symlinks=True)
        before = photograph(out)
        sidecar_before = item.sidecar
        try:
            code, _, err = cli("build", str(profile), "-o", str(out))
        except Hang as hang:
            raise AssertionError(f"build hung: {hang}\ninput: {item!r}") from None
        kind = signature(code, err)
        stats.outcomes["ok" if code == 0 else f"exit {code}"] += 1
        if record and kind not in stats.signatures:
            stats.recorded += save_to_corpus(stats.target, item)
        stats.signatures.add(kind)
        assert code in (0, 2), f"exit {code}, stderr:\n{err}\ninput: {item!r}"
        assert "Traceback" not in err, err
        if code == 2:
            assert err.strip(), f"exit 2 without a message; input: {item!r}"
            assert photograph(out) == before, f"a failed build changed the output folder; stderr: {err}\ninput: {item!r}"
            if sidecar_before is not None:
                assert sidecar.read_bytes() == sidecar_before, "a failed build rewrote the sidecar"
            return code
        secrets_bytes = sidecar.read_bytes()
        certificate = tls_source_bytes(profile, item.profile, {})
        assert recorded_files_match(out, fingerprint(item.profile, secrets_bytes, {}, certificate)) is not None, f"manifest does not prove the build; input: {item!r}"
        check_code, _, check_err = cli("check", str(profile), "-o", str(out))
        assert check_code == 0, f"check disagrees with the build it follows: {check_err}\ninput: {item!r}"
        secrets = tomllib.loads(secrets_bytes.decode("utf-8"))
        env = dotenv.as_dict(dotenv.parse((out / ".env").read_text(encoding="utf-8")))
        for name, key in SECRET_ENV_KEYS.items():
            assert env[key] == secrets[name], f"{name} did not reach .env unchanged; input: {item!r}"
        successes = stats.outcomes["ok"]
        if successes <= 3 or successes % compose_every == 0:
            stats.compose_checked += 1
            result = run_compose(out, "config", "-q")
            assert result.returncode == 0, f"the real Compose refuses the output: {result.stderr}\ninput: {item!r}"
    return code


def save_to_corpus(target: str, item: FuzzInput) -> int:
    """Keep an input with a new kind of outcome (make fuzz); returns 1 when a file was written."""
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.toml"))) >= CORPUS_LIMIT:
        return 0
    digest = hashlib.sha256(item.profile + b"\0" + (item.sidecar or b"")).hexdigest()[:16]
    path = folder / f"{digest}.toml"
    if path.exists():
        return 0
    path.write_bytes(item.profile)
    if item.sidecar is not None:
        (folder / f"{digest}.sidecar").write_bytes(item.sidecar)
    return 1


def corpus_inputs() -> list[tuple[str, FuzzInput]]:
    """Every recorded input: tests/fuzz_corpus/<target>/<name>.toml (+ <name>.sidecar)."""
    found = []
    for path in sorted(CORPUS.glob("*/*.toml")):
        sidecar = path.with_suffix(".sidecar")
        found.append((f"{path.parent.name}/{path.stem}", FuzzInput(path.read_bytes(), sidecar.read_bytes() if sidecar.exists() else None)))
    return found


def timed_rounds(seconds: float) -> Iterator[int]:
    """Round numbers until the time budget is spent (at least one round)."""
    deadline = time.monotonic() + seconds
    round_number = 0
    while round_number == 0 or time.monotonic() < deadline:
        yield round_number
        round_number += 1

"""Bounded fuzzing of `omnigen build` over raw profile bytes and secret values (see tests/fuzzing.py).

Each target runs rounds of hypothesis examples until its time budget is spent
(FUZZ_SECONDS per target, default 15: about a minute for the module with the corpus replay); `make fuzz`
raises the budget and records new kinds of outcome in tests/fuzz_corpus/, which
`test_corpus_input` replays on every run. Each target reports its number of
executions in the pytest output.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import (
    FuzzInput,
    Stats,
    corpus_inputs,
    env_int,
    mutated_profile,
    run_input,
    secret_inputs,
    structured_profile,
    timed_rounds,
)

SECONDS = float(os.environ.get("FUZZ_SECONDS", "15"))
ROUND = env_int("FUZZ_ROUND_EXAMPLES", 25)
COMPOSE_EVERY = env_int("FUZZ_COMPOSE_EVERY", 12)
RECORD = os.environ.get("FUZZ_RECORD") == "1"


def report(request: pytest.FixtureRequest, line: str) -> None:
    """Show the execution count in the pytest output even though test output is captured."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)


def fuzz(request: pytest.FixtureRequest, target: str, strategy: st.SearchStrategy[FuzzInput]) -> Stats:
    stats = Stats(target)

    @settings(max_examples=ROUND, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
    @given(strategy)
    def one(item: FuzzInput) -> None:
        run_input(item, stats, compose_every=COMPOSE_EVERY, record=RECORD)

    start = time.monotonic()
    for _ in timed_rounds(SECONDS):
        one()
    stats.seconds = time.monotonic() - start
    report(request, stats.line())
    assert stats.executions >= ROUND, "the fuzzer barely ran"
    return stats


def test_fuzz_profile_byte_mutations(request: pytest.FixtureRequest) -> None:
    stats = fuzz(request, "profile-bytes", mutated_profile().map(lambda raw: FuzzInput(raw, None)))
    assert stats.outcomes["exit 2"] > 0 and stats.outcomes["ok"] > 0, stats.outcomes


def test_fuzz_structured_profiles(request: pytest.FixtureRequest) -> None:
    stats = fuzz(request, "profile-values", structured_profile().map(lambda raw: FuzzInput(raw, None)))
    assert stats.outcomes["exit 2"] > 0, stats.outcomes


def test_fuzz_secret_values(request: pytest.FixtureRequest) -> None:
    stats = fuzz(request, "secrets", secret_inputs())
    # Most generated secrets must build, or the fuzzer only explores refusals. One round of 25
    # examples (a loaded machine) is too small a sample for a ratio: there, one success must do.
    if stats.executions >= 4 * ROUND:
        assert stats.outcomes["ok"] > stats.executions // 4, stats.outcomes
    else:
        assert stats.outcomes["ok"] > 0, stats.outcomes


CORPUS = corpus_inputs()
# Hand-written seeds whose outcome is known: hostile values that must build (secrets
# are free text) and injections or malformed input that must be refused with a message.
# Other corpus inputs (recorded by `make fuzz`) only need to keep to the invariants.
MUST_BUILD = {"crlf-line-endings", "secrets-hostile-values", "secrets-hostile-values-webrtc", "secrets-partial-with-comments", "secrets-multiline-literal"}
MUST_REFUSE = {
    "deep-nesting", "deep-inline-tables", "utf8-bom", "domain-newline-section", "domain-line-separator", "name-nul", "raw-nul-byte",
    "invalid-utf8", "public-ip-boolean", "public-ip-integer", "calls-huge-integer", "calls-nan", "image-injection", "image-latest",
    "build-context-dollar", "network-host", "duplicate-table", "schema-version-3", "empty-file", "only-comment", "secrets-too-long",
    "secrets-nul", "secrets-placeholder", "secrets-word-secret", "secrets-empty-value", "secrets-unknown-key", "secrets-wrong-type", "secrets-deep-nesting",
}


@pytest.mark.parametrize(("name", "item"), CORPUS, ids=[name for name, _ in CORPUS])
def test_corpus_input(name: str, item: FuzzInput) -> None:
    """Every recorded input still ends in a verified build or exit 2, never worse (real Compose on every success)."""
    code = run_input(item, Stats(name), compose_every=1)
    seed = name.removeprefix("seeds/")
    if seed in MUST_BUILD or seed in MUST_REFUSE:
        assert code == (0 if seed in MUST_BUILD else 2), f"{name}: exit {code}"


def test_seed_expectations_name_real_seeds() -> None:
    seeds = {name.removeprefix("seeds/") for name, _ in CORPUS if name.startswith("seeds/")}
    assert seeds >= MUST_BUILD | MUST_REFUSE
    assert not MUST_BUILD & MUST_REFUSE

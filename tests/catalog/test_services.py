"""omnigen/catalog/services.py: one entry per service, and adding a service is adding one entry.

The extra service registered below appears in docker-compose.yml (single host) and in stack.yml
and its host's bundle (multi-host) with its image, variables, health check and hardening, passes
the verify stage (compile_profile runs it) and is accepted by the real Compose binary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from omnigen.catalog import services
from omnigen.catalog.addressing import dynamic_addresses_needed
from omnigen.catalog.application import EnvRef
from omnigen.catalog.services import (
    HealthTiming,
    Mount,
    Param,
    Service,
    Want,
    catalog,
    client_needs,
    env_keys,
    listen_owner,
    listen_ports,
    resolve,
    role_services,
)
from omnigen.pipeline import Compiled
from omnigen.plan import placement
from tests.conftest import ALL_EXAMPLES, ROOT, compile_example, compose_binary, compose_json, write_files

PROFILES = ROOT / "profiles"

# A second Redis, as a cache: an image the profile already names, a variable that is secret (REDISCLI_AUTH
# reaches it through secrets/cache.env) and one that is not, a health check with its timing, default resources.
CACHE = Service(
    "cache",
    image="redis",
    role="data",
    listen={"cache": 6380},
    depends_on=("redis",),
    environment=(EnvRef("REDISCLI_AUTH", "REDIS_PASSWORD"), EnvRef("TZ", "TZ")),
    command=("redis-server", "--port", "6380", "--save", ""),
    healthcheck=("CMD-SHELL", "redis-cli -p 6380 ping | grep -q PONG"),
    health_timing=HealthTiming("12s", "4s", 6, "8s"),
    user="redis",
    resources=Want(192, 24, 0.25, 0.02, 64),
)


@pytest.fixture
def with_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(services, "SERVICES", tuple(sorted((*services.SERVICES, CACHE), key=lambda entry: entry.name)))
    yield


def _judged(folder: Path, compose_file: str) -> dict[str, Any]:
    """The real Compose binary's normalised model of one file, with the .env beside it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    result = subprocess.run(
        [str(compose_binary()), "--project-directory", str(folder), "-f", str(folder / compose_file), "--env-file", str(folder / ".env"), "config", "--format", "json"],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"compose warned: {result.stderr}"
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _assert_cache_printed(service: dict[str, Any]) -> None:
    assert service["healthcheck"] == {
        "test": ["CMD-SHELL", "redis-cli -p 6380 ping | grep -q PONG"], "interval": "12s", "timeout": "4s", "retries": 6, "start_period": "8s",
    }  # fmt: skip
    assert service["cap_drop"] == ["ALL"] and "cap_add" not in service
    assert service["user"] == "redis"
    assert service["command"] == ["redis-server", "--port", "6380", "--save", ""]


def test_an_extra_catalog_entry_is_a_complete_service_of_the_single_host_compose_file(with_cache: None, tmp_path: Path) -> None:
    compiled = compile_example(PROFILES / "call-center-200.toml")  # verify ran: every rule and plan agreement holds
    (cache,) = (definition for definition in compiled.plan.definitions if definition.name == "cache")
    assert cache.limits == compiled.plan.limits["cache"]
    text = compiled.files["docker-compose.yml"]
    assert "\n\n  cache:\n" in text and text.index("  cache:") < text.index("  celery-beat:")
    assert compiled.files["secrets/cache.env"].count("REDISCLI_AUTH=") == 1

    folder = write_files(tmp_path, compiled.files)
    service = compose_json(folder)["services"]["cache"]
    assert service["image"] == compiled.plan.images["redis"].image
    assert service["environment"] == {"REDISCLI_AUTH": compiled.plan.env_map["REDIS_PASSWORD"], "TZ": compiled.plan.timezone}
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["security_opt"] == ["no-new-privileges:true"] and service["restart"] == "unless-stopped"
    limits = compiled.plan.limits["cache"]
    assert service["deploy"]["resources"]["limits"]["memory"] == str(192 * 1024 * 1024) == str(int(limits.memory.rstrip("M")) * 1024 * 1024)
    assert service["networks"] == {"omnivoip_net": None}
    _assert_cache_printed(service)


def test_an_extra_catalog_entry_is_placed_by_its_role_in_stack_yml_and_its_hosts_bundle(with_cache: None, tmp_path: Path) -> None:
    compiled: Compiled = compile_example(PROFILES / "multi-host-2.toml")
    plan = compiled.plan
    assert plan.cluster is not None
    data_host = next(host for host in plan.cluster.hosts if "data" in host.roles)
    assert "cache" in data_host.services and data_host.plan.runs("cache")
    assert not any(host.plan.runs("cache") for host in plan.cluster.hosts if host is not data_host)
    folder = write_files(tmp_path, compiled.files)

    stack = yaml.safe_load(compiled.files["stack.yml"])["services"]["cache"]
    assert stack["deploy"]["placement"]["constraints"] == ["node.labels.omnivoip.role.data == true", f"node.labels.omnivoip.host.{data_host.name} == true"]
    assert stack["environment"] == {"REDISCLI_AUTH": "${REDIS_PASSWORD:?}", "TZ": "${TZ:?}"}
    judged = _judged(folder, "stack.yml")["services"]["cache"]
    assert judged["image"] == plan.images["redis"].image
    assert judged["environment"]["REDISCLI_AUTH"] == plan.env_map["REDIS_PASSWORD"]
    _assert_cache_printed(judged)

    bundle = _judged(folder / "hosts" / data_host.name, "docker-compose.yml")["services"]["cache"]
    assert bundle["image"] == plan.images["redis"].image and bundle["security_opt"] == ["no-new-privileges:true"]
    _assert_cache_printed(bundle)


def test_the_catalog_lists_every_service_once_by_name() -> None:
    names = [entry.name for entry in catalog()]
    assert names == sorted(set(names))
    # Every service's own ports have distinct names; a client is only ever told one of them.
    assert sum(len(entry.listen) for entry in catalog()) == len(listen_ports())
    for entry in catalog():
        assert set(entry.expose) <= set(entry.listen), entry.name
        assert set(entry.depends_on) <= set(names) and set(entry.clients) <= set(names), entry.name
        assert entry.role is not None or entry.when is not None, f"{entry.name} is placed by no role and switched on by no feature"


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda path: path.stem)
def test_every_compose_service_is_printed_from_its_definition(example: Path) -> None:
    compiled = compile_example(example)
    top = "stack.yml" if compiled.plan.cluster else "docker-compose.yml"
    for path, plan in ((top, compiled.plan), *((f"{folder}/docker-compose.yml", part) for folder, part in compiled.plan.bundles)):
        printed = yaml.safe_load(compiled.files[path])["services"]
        assert list(printed) == [definition.name for definition in plan.definitions], path
        assert all(plan.runs(name) for name in printed if plan.cluster is None), path


def test_roles_clients_and_variables_come_from_the_entries() -> None:
    assert role_services("data") == ("minio", "postgresql", "redis")
    assert role_services("edge") == ("nginx",)
    assert client_needs("django-app") == ("asterisk", "minio", "postgresql", "redis")
    assert client_needs("nginx") == () and client_needs("no-such-service") == ()
    assert env_keys("redis") == ("REDIS_PASSWORD", "TZ")
    assert env_keys("postgresql") == ("POSTGRES_DB", "POSTGRES_PASSWORD", "POSTGRES_USER", "TZ")
    assert listen_owner("asterisk-ami") == listen_owner("asterisk-http") == "asterisk" and listen_owner("minio-console") == "minio"
    # [[hosts]]: a client on another host is told the data host's address and the same port as on one host.
    assert {key: listen_ports()[key] for key in ("postgresql", "redis", "minio", "asterisk-ami", "asterisk-http")} == placement.PEER_PORTS


def test_the_dynamic_address_count_follows_the_catalog(with_cache: None) -> None:
    # Eleven services of the roles without a fixed address, and the cache: each worker replica counts on its own.
    assert dynamic_addresses_needed(1, 1) == 12
    assert dynamic_addresses_needed(3, 2) == 15


def test_params_are_the_profiles_values() -> None:
    assert resolve(("a", Param("n", "--n="), Param("m")), {"n": 4, "m": "x"}) == ("a", "--n=4", "x")
    with pytest.raises(KeyError):
        resolve((Param("missing"),), {})


def test_a_bind_mount_the_stack_cannot_carry_is_refused_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Swarm does not bind-mount the manager's files on another node: stack.yml carries generated files as
    # configs; an entry whose file has none would start without it, so the plan refuses to print it.
    notes = replace(CACHE, name="notes", role="web", depends_on=(), mounts=(Mount("./backend/startup.sh", "/srv/notes.sh"),))
    monkeypatch.setattr(services, "SERVICES", tuple(sorted((*services.SERVICES, notes), key=lambda entry: entry.name)))
    single = compile_example(PROFILES / "call-center-200.toml")
    (printed,) = (definition for definition in single.plan.definitions if definition.name == "notes")
    assert printed.volumes == ("./backend/startup.sh:/srv/notes.sh:ro",)
    with pytest.raises(ValueError, match=re.escape("no Swarm config, secret or volume for notes's ./backend/startup.sh at /srv/notes.sh")):
        compile_example(PROFILES / "multi-host-2.toml")


def test_a_feature_service_runs_only_with_its_feature() -> None:
    plain = compile_example(PROFILES / "call-center-200.toml").plan
    webrtc = compile_example(PROFILES / "webrtc.toml").plan
    assert not plain.runs("kamailio") and not plain.runs("acme") and plain.runs("nginx")
    assert webrtc.runs("kamailio") and webrtc.runs("rtpengine")
    assert [d.name for d in webrtc.definitions if d.name in ("kamailio", "rtpengine")] == ["kamailio", "rtpengine"]
    (nginx,) = (definition for definition in webrtc.definitions if definition.name == "nginx")
    assert "kamailio" in nginx.depends_on and "acme" not in nginx.depends_on and nginx.command == ()

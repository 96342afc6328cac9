"""The verify stage of a multi-host build: every bundle, the stack, and what must agree across hosts.

Each `hosts/<name>/` bundle is verified like a single-host build (rules plus plan
agreement). stack.yml is loaded as `docker stack deploy` reads it (its .env, the
Swarm configs followed to each host's rtp.conf/pjsip.conf) and held to the same
rules. Then the invariants no single file can show:

- each voice host's RTP range is the same in stack.yml (published ports and the
  Asterisk service's variables), in its bundle (compose ports, .env) and in the
  rtp.conf both use, and is the plan's;
- every address a client is given resolves to where the service runs: in the stack
  a service name of the stack; in a bundle a service of the bundle, or another host's
  address where that host's bundle publishes the port, on that address, for a
  service listening on it;
- a stack service and its bundle twin run the same image, command, healthcheck,
  user, capabilities, limits and environment (addresses aside);
- label-nodes.sh gives each host exactly the labels the stack's constraints need;
- every .env variable is read and every `${VAR}` is defined.

Any problem is an omnigen bug: VerifyError, exit 3, nothing written.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any

from omnigen.catalog.application import BROWSER_ORIGIN_VARIABLES
from omnigen.catalog.services import client_needs
from omnigen.errors import VerifyError
from omnigen.formats import dotenv
from omnigen.formats.composeports import parse_port
from omnigen.plan.plan import Plan
from omnigen.verify.bundle import verify_bundle
from omnigen.verify.deployment import Deployment, deployment_from_memory
from omnigen.verify.rules import RuleContext, run_rules
from omnigen.verify.rules.drift import listen_ports, published_media_range, rtp_conf_range, told_addresses

STACK_FILE = "stack.yml"
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_REQUIRED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?\}")
# label-nodes.sh: `node_N=$(node_for HOST ADDRESS "$@")` and `if [ "$node_N" = "$node" ]; then labels="$labels"' LABELS'; fi`
_NODE_LINE = re.compile(r"^node_(\d+)=\$\(node_for (\S+) (\S+) \"\$@\"\)$", re.M)
_LABEL_LINE = re.compile(r"^\s*if \[ \"\$node_(\d+)\" = \"\$node\" \]; then labels=\"\$labels\"'([^']*)'; fi$", re.M)
# Service keys a stack service and its bundle twin must agree on (deploy and networking differ by design).
TWIN_KEYS = ("image", "command", "healthcheck", "user", "cap_drop")


def _folder_files(files: dict[str, str], folder: str) -> dict[str, str]:
    prefix = folder + "/"
    return {name[len(prefix) :]: text for name, text in files.items() if name.startswith(prefix)}


def load_stack(files: dict[str, str]) -> Deployment:
    return deployment_from_memory(files, STACK_FILE)


def _references(deployment: Deployment) -> set[str]:
    return {name for raw in deployment.raw_strings.values() for name in _REFERENCE.findall(raw)}


def _env_problems(where: str, plan: Plan, text: str, deployment: Deployment) -> list[str]:
    """The .env reads back as planned, and holds exactly what the compose/stack file reads."""
    problems = []
    env = dotenv.as_dict(dotenv.parse(text))
    if env != plan.env_map:
        differing = sorted(key for key in env.keys() | plan.env_map.keys() if env.get(key) != plan.env_map.get(key))
        problems.append(f"{where}.env: does not read back as planned: {', '.join(differing)}")
    # secrets/<service>.env hold the secret values a bundle's services receive (copies of .env keys).
    via_secret_files = {key for path in plan.secret_env for _, key in plan.secret_variables(path.removeprefix("secrets/").removesuffix(".env"))}
    unread = sorted(set(env) - _references(deployment) - via_secret_files)
    if unread:
        problems.append(f"{where}.env: holds variables nothing reads: {', '.join(unread)}")
    return problems


def _normalised(node: Any) -> Any:
    """Raw compose text with stack.yml's fail-closed `${VAR:?}` read as the bundle's `${VAR}`."""
    if isinstance(node, dict):
        return {key: _normalised(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_normalised(value) for value in node]
    if isinstance(node, str):
        return _REQUIRED.sub(r"${\1}", node)
    return node


def _raw(deployment: Deployment, *path: str | int) -> Any:
    """A value as written (before interpolation), walking the merged data."""
    node: Any = deployment.data
    for key in path:
        node = node.get(key) if isinstance(node, dict) else node[key] if isinstance(node, list) and isinstance(key, int) else None
    return _with_raw(deployment, node, tuple(path))


def _with_raw(deployment: Deployment, node: Any, path: tuple[str | int, ...]) -> Any:
    if isinstance(node, dict):
        return {key: _with_raw(deployment, value, (*path, key)) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_raw(deployment, value, (*path, index)) for index, value in enumerate(node)]
    return deployment.raw_strings.get(path, node)


def _twin_problems(plan: Plan, stack: Deployment, bundles: dict[str, Deployment]) -> Iterator[str]:
    assert plan.cluster is not None
    for service in plan.cluster.services:
        bundle = bundles.get(service.host)
        if bundle is None or service.base not in bundle.services:
            yield f"{STACK_FILE}: {service.name} runs on {service.host}, but hosts/{service.host}/docker-compose.yml has no {service.base}"
            continue
        for key in TWIN_KEYS:
            mine, twin = _normalised(_raw(stack, "services", service.name, key)), _raw(bundle, "services", service.base, key)
            if mine != twin:
                yield f"{STACK_FILE}: {service.name}.{key} is {mine!r}, hosts/{service.host} has {twin!r}"
        limits = ("deploy", "resources", "limits")
        if _raw(stack, "services", service.name, *limits) != _raw(bundle, "services", service.base, *limits):
            yield f"{STACK_FILE}: {service.name} limits differ from hosts/{service.host}'s {service.base}"
        mine_env = _normalised(_raw(stack, "services", service.name, "environment")) or {}
        twin_env = _raw(bundle, "services", service.base, "environment") or {}
        # A bundle's secrets come from its secrets/<service>.env (checked against the plan when the
        # bundle was verified); the stack names the same .env keys, which deploy-stack.sh exports.
        from_secret_file = {name: f"${{{key}}}" for name, key in plan.secret_variables(service.base)}
        twin_env = {key: from_secret_file.get(key, value) for key, value in twin_env.items()}
        twin_values = bundle.service_env(service.base)
        if set(mine_env) != set(twin_env):
            yield f"{STACK_FILE}: {service.name} sets {sorted(mine_env)}, hosts/{service.host}'s {service.base} sets {sorted(twin_env)}"
            continue
        for key, raw in mine_env.items():
            literal = "$" not in str(raw)
            # Per-host Asterisk values are literals in the stack; ACD_HOSTNAME names the stack's own service.
            if raw == twin_env[key] or (literal and (str(raw) == twin_values.get(key) or key == "ACD_HOSTNAME")):
                continue
            yield f"{STACK_FILE}: {service.name} {key}={raw!r}, hosts/{service.host}'s {service.base} has {twin_env[key]!r}"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _stack_problems(plan: Plan, stack: Deployment) -> Iterator[str]:
    """stack.yml says exactly what the plan says: services, placement, host-mode ports, network, configs."""
    cluster = plan.cluster
    assert cluster is not None
    if set(stack.services) != {service.name for service in cluster.services}:
        yield f"{STACK_FILE}: services {sorted(stack.services)}, plan says {sorted(service.name for service in cluster.services)}"
    for service in cluster.services:
        data = stack.services.get(service.name, {})
        deploy = _mapping(data.get("deploy"))
        placement_data = _mapping(deploy.get("placement"))
        if list(placement_data.get("constraints") or []) != list(service.constraints):
            yield f"{STACK_FILE}: {service.name} is constrained to {placement_data.get('constraints')}, plan says {list(service.constraints)}"
        if deploy.get("endpoint_mode") != cluster.endpoint_mode:
            yield f"{STACK_FILE}: {service.name} has endpoint_mode {deploy.get('endpoint_mode')}, plan says {cluster.endpoint_mode}"
        if int(deploy.get("replicas", 1)) != service.replicas:
            yield f"{STACK_FILE}: {service.name} has {deploy.get('replicas', 1)} replicas, plan says {service.replicas}"
        ports = [(entry.get("target"), entry.get("published"), entry.get("protocol"), entry.get("mode")) for entry in data.get("ports") or [] if isinstance(entry, dict)]
        planned = [(port.target, port.published, port.protocol, "host") for port in service.ports]
        if ports != planned or len(ports) != len(data.get("ports") or []):
            yield f"{STACK_FILE}: {service.name} publishes {len(data.get('ports') or [])} ports unlike the plan's {len(planned)} host-mode ports"
    network = (stack.data.get("networks") or {}).get(cluster.overlay_name)
    expected = {"driver": "overlay", "attachable": True, "ipam": {"config": [{"subnet": cluster.subnet}]}}
    if network != expected:
        yield f"{STACK_FILE}: network {cluster.overlay_name} is {network}, plan says {expected}"
    declared = {**(stack.data.get("configs") or {}), **(stack.data.get("secrets") or {})}
    objects = [*cluster.configs, *cluster.secrets, *cluster.backend_objects] + [
        item for voice in cluster.voice for item in voice.confs
    ]
    secret_keys = {item.key for item in cluster.secrets}
    for item in objects:
        entry = declared.get(item.key)
        name = _raw(stack, "secrets" if item.key in secret_keys else "configs", item.key, "name")
        if not isinstance(entry, dict) or entry.get("file") != item.file or name != item.name:
            yield f"{STACK_FILE}: {item.key} is {entry}, plan says {item.name} from {item.file}"
    if set(declared) != {item.key for item in objects}:
        yield f"{STACK_FILE}: declares configs/secrets {sorted(declared)}, plan says {sorted(item.key for item in objects)}"


def _range_problems(plan: Plan, stack: Deployment, bundles: dict[str, Deployment]) -> Iterator[str]:
    """Each voice host's range: stack ports and variables, bundle ports and .env, the rtp.conf, the plan."""
    assert plan.cluster is not None
    for voice in plan.cluster.voice:
        planned = (voice.rtp.start, voice.rtp.end)
        bundle = bundles[voice.host]
        statements: dict[str, tuple[int | None, int | None]] = {}
        published = published_media_range(stack, voice.service)
        statements[f"{STACK_FILE} {voice.service} ports"] = (published.start, published.end) if published else (None, None)
        env = stack.service_env(voice.service)
        statements[f"{STACK_FILE} {voice.service} ACD_RTP_PORT_MIN/MAX"] = (_number(env.get("ACD_RTP_PORT_MIN")), _number(env.get("ACD_RTP_PORT_MAX")))
        for config in stack.configs_named("rtp.conf"):
            if config.service == voice.service:
                source = rtp_conf_range(config)
                statements[f"{config.path} (Swarm config of {voice.service})"] = (source.start, source.end)
        bundle_ports = published_media_range(bundle, "asterisk")
        statements[f"hosts/{voice.host}/docker-compose.yml ports"] = (bundle_ports.start, bundle_ports.end) if bundle_ports else (None, None)
        statements[f"hosts/{voice.host}/.env ACD_RTP_PORT_MIN/MAX"] = (_number(bundle.env.get("ACD_RTP_PORT_MIN")), _number(bundle.env.get("ACD_RTP_PORT_MAX")))
        bundle_conf = bundle.config("rtp.conf")
        if bundle_conf is not None:
            source = rtp_conf_range(bundle_conf)
            statements[f"hosts/{voice.host}/{bundle_conf.path}"] = (source.start, source.end)
        wrong = {where: value for where, value in statements.items() if value != planned}
        if wrong or len(statements) < 6:
            shown = "; ".join(f"{where} {start}-{end}" for where, (start, end) in statements.items())
            yield f"{voice.host}: the RTP range is not {planned[0]}-{planned[1]} everywhere ({shown})"


def _number(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def client_addresses(deployment: Deployment) -> Iterator[tuple[str, str, str, int]]:
    """(service, variable, host, port) for every address a service is told (host/port pairs, URLs, host:port)."""
    for name in deployment.services:
        for told in told_addresses(deployment.service_env(name)):
            if told.variable not in BROWSER_ORIGIN_VARIABLES:
                yield name, told.variable, told.host, told.port


def _is_address(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _resolution_problems(plan: Plan, stack: Deployment, bundles: dict[str, Deployment]) -> Iterator[str]:
    """Every address a client is given leads to the service it means, where that service runs."""
    assert plan.cluster is not None
    for service, variable, host, port in client_addresses(stack):
        if host not in stack.services:
            yield f"{STACK_FILE}: {service} is told {variable} -> {host}:{port}, which is no service of the stack"
        elif (listening := listen_ports(stack.services[host])) and port not in listening:
            yield f"{STACK_FILE}: {service} is told {variable} -> {host}:{port}, but {host} listens on {sorted(listening)}"
    by_address = {bundle.address: bundle.name for bundle in plan.cluster.hosts}
    for name, bundle in bundles.items():
        for service, variable, host, port in client_addresses(bundle):
            where = f"hosts/{name}: {service} is told {variable} -> {host}:{port}"
            if host in bundle.services:
                # As OV207: a service whose listen ports cannot be read from the file is taken at its word.
                if (listening := listen_ports(bundle.services[host])) and port not in listening:
                    yield f"{where}, but {host} listens on {sorted(listening)}"
                continue
            if not _is_address(host) or host not in by_address:
                yield f"{where}, which is neither a service of this host nor the address of another host"
                continue
            target_name = by_address[host]
            target = bundles[target_name]
            served = [
                (server, spec)
                for server, data in target.services.items()
                for spec in (parse_port(entry) for entry in data.get("ports") or [])
                if spec is not None and spec.host_ip == host and spec.host_start == port and spec.protocol == "tcp"
            ]
            if len(served) != 1:
                yield f"{where}, but hosts/{target_name} publishes nothing there on {host}"
                continue
            server, spec = served[0]
            if spec.container_start not in listen_ports(target.services[server]):
                yield f"{where}: hosts/{target_name} forwards it to {server}:{spec.container_start}, where nothing listens"
            elif server not in client_needs(service):
                yield f"{where}: that is {server} on {target_name}, which {service} does not use"


def _label_problems(plan: Plan, stack: Deployment, script: str) -> Iterator[str]:
    """label-nodes.sh labels each host with exactly the labels the stack's constraints put its services on."""
    assert plan.cluster is not None
    nodes = {int(index): (name, address) for index, name, address in _NODE_LINE.findall(script)}
    labels = {int(index): tuple(text.split()) for index, text in _LABEL_LINE.findall(script)}
    scripted = {nodes[index][0]: (nodes[index][1], labels.get(index, ())) for index in nodes}
    for host in plan.cluster.hosts:
        if scripted.get(host.name) != (host.address, host.labels):
            yield f"label-nodes.sh: labels {host.name} as {scripted.get(host.name)}, plan says {(host.address, host.labels)}"
    for service in plan.cluster.services:
        data = stack.services.get(service.name, {})
        constraints = ((data.get("deploy") or {}).get("placement") or {}).get("constraints") or []
        for constraint in constraints:
            match = re.fullmatch(r"node\.labels\.(\S+) == true", str(constraint))
            if match is None or match.group(1) not in scripted.get(service.host, ("", ()))[1]:
                yield f"{STACK_FILE}: {service.name} needs {constraint}, which label-nodes.sh does not give {service.host}"
    if len(nodes) != len(plan.cluster.hosts):
        yield f"label-nodes.sh: resolves {len(nodes)} hosts, the profile has {len(plan.cluster.hosts)}"


def _deploy_script_problems(plan: Plan, script: str) -> Iterator[str]:
    assert plan.cluster is not None
    command = f"exec docker stack deploy --prune \"$@\" --compose-file {STACK_FILE} {plan.cluster.stack_name}"
    if command not in script.splitlines():
        yield f"deploy-stack.sh: does not run `{command}`"
    if ". ./.env" not in script.splitlines():
        yield "deploy-stack.sh: does not export .env before deploying"


def verify_cluster(plan: Plan, files: dict[str, str]) -> Deployment:
    """Verify a multi-host build. Returns the stack's Deployment; raises VerifyError."""
    cluster = plan.cluster
    assert cluster is not None
    problems: list[str] = []
    bundles: dict[str, Deployment] = {}
    for folder, part in plan.bundles:
        name = folder.rsplit("/", 1)[-1]
        sub = _folder_files(files, folder)
        try:
            bundle = verify_bundle(part, sub)
        except VerifyError as error:
            problems += [f"{folder}/{finding}" for finding in error.findings]
            continue
        bundles[name] = bundle
        problems += _env_problems(f"{folder}/", part, sub[".env"], bundle)
    stack = load_stack(files)
    calls = sum(voice.calls for voice in cluster.voice)
    report = run_rules(stack, RuleContext(calls=calls))
    problems += [finding.render() for finding in report.findings] + [finding.render() for finding, _ in report.suppressed]
    problems += _env_problems("", plan, files[".env"], stack)
    problems += list(_stack_problems(plan, stack))
    if len(bundles) == len(cluster.hosts):  # the cross-host checks need every bundle loaded
        problems += list(_range_problems(plan, stack, bundles))
        problems += list(_twin_problems(plan, stack, bundles))
        problems += list(_resolution_problems(plan, stack, bundles))
        problems += list(_label_problems(plan, stack, files["label-nodes.sh"]))
        problems += list(_deploy_script_problems(plan, files["deploy-stack.sh"]))
    if problems:
        raise VerifyError(problems)
    return stack

"""The plan of a multi-host profile ([[hosts]]): stack.yml for Docker Swarm and one bundle per host.

`make_cluster_plan` is what `make.make_plan` returns for a multi-host profile: a
top-level Plan for the files beside stack.yml (stack.yml, its .env,
label-nodes.sh, deploy-stack.sh) whose `cluster` holds every host, and one
ordinary Plan per host for `hosts/<name>/` (the same templates as a single-host
build, restricted to the host's services, with other hosts' addresses filled in).
Every per-host number comes from capacity.host_port_plan, the layout
feasibility.py checked (passed in, not computed again). docs/multi-host.md explains the choices.
"""

from __future__ import annotations

import hashlib
import posixpath

from omnigen import __version__
from omnigen.catalog import hostkinds
from omnigen.catalog.addressing import dynamic_address_range
from omnigen.catalog.services import BACKEND_STARTUP_SCRIPT, SINGLE_HOST_ROLES, catalog, env_keys, role_services
from omnigen.errors import InputFileError, InputIssue, ProfileError
from omnigen.formats.shellenv import unrepresentable
from omnigen.inputs.inputfile import MAX_TOML_BYTES, read_input
from omnigen.inputs.profile import ClusterHost, Profile, Secrets
from omnigen.inputs.tomlpos import key_lines
from omnigen.plan import placement
from omnigen.plan.capacity import HostPorts, RtpRange
from omnigen.plan.caveats import PlanWarning, plan_warnings
from omnigen.plan.feasibility import Layout
from omnigen.plan.plan import (
    LISTEN,
    NETWORK_NAME,
    OUTPUTS,
    TLS_ID_VARIABLE,
    VOLUME_MOUNTS,
    BackendSettings,
    BundleHost,
    ClusterPlan,
    Endpoint,
    EnvSection,
    HostBundle,
    NetworkPlan,
    Plan,
    StackPort,
    StackService,
    SwarmObject,
    VoiceHost,
    allowed_hosts,
    application_fields,
    container_port,
    env_sections,
    fixed_address,
    limits_for,
    local_endpoints,
    profile_hash,
    published_ports,
    service_images,
    url_port_suffix,
)

# The files beside stack.yml. `.env` there is single-quoted so that both `sh` (deploy-stack.sh
# sources it: `docker stack deploy` reads no .env) and Compose/omnigen lint read the same bytes.
STACK_OUTPUTS: tuple[tuple[str, str], ...] = (
    ("stack.yml.j2", "stack.yml"),
    ("stack.env.j2", ".env"),
    ("label-nodes.sh.j2", "label-nodes.sh"),
    ("deploy-stack.sh.j2", "deploy-stack.sh"),
)
# A bundle holds the single-host outputs of its roles.
# The Asterisk configs beside pjsip.conf and rtp.conf, each voice host mounts its copy (docs/application.md).
ASTERISK_APPLICATION_CONFS = ("ari", "extensions", "http", "manager", "queues")
ROLE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "voice": tuple(dest for _, dest in OUTPUTS if dest.startswith("asterisk/")),
    "edge": ("nginx/nginx.conf",),
    "web": ("backend/startup.sh", "backend/omnigen_settings.py"),
}
COMMON_OUTPUTS = ("docker-compose.yml", ".env")
TLS_CERTIFICATE_FILE = "./certs/fullchain.pem"
TLS_KEY_FILE = "./certs/privkey.pem"
MAX_SWARM_OBJECT_NAME = 64  # swarmkit refuses longer config and secret names
# Asterisk's named volumes and their targets (plan.VOLUME_MOUNTS); each voice host has its own set.
ASTERISK_VOLUMES = tuple((key, target) for key, mounts in VOLUME_MOUNTS.items() for service, target in mounts if service == "asterisk")


def _object_name(profile: Profile, key: str) -> str:
    """A Swarm config name that changes whenever the generated file can: profile, omnigen version."""
    digest = hashlib.sha256(f"{profile_hash(profile)}:{__version__}:{key}".encode()).hexdigest()[:8]
    prefix = profile.project.name[: MAX_SWARM_OBJECT_NAME - len(key) - len(digest) - 2]
    return f"{prefix}-{key}-{digest}"


def _endpoints(profile: Profile, host: ClusterHost) -> dict[str, Endpoint]:
    """Where this host's clients reach each service: by name when it runs here, else at the data host's address."""
    endpoints = local_endpoints()
    here = placement.services_of(host.roles)
    # Data services on the data host; AMI and ARI on the first voice host (the application controls one Asterisk).
    for key, port in placement.PEER_PORTS.items():
        if placement.peer_service(key) not in here:
            endpoints[key] = Endpoint(str(placement.peer_holder(profile, key).address), port)
    return endpoints


def _allowed_hosts(profile: Profile) -> str:
    """The edge host's: browsers reach nginx there, by its public or its private address."""
    edge = placement.hosts_with(profile, "edge")[0]
    return allowed_hosts(profile.project.domain, (edge.public_ip, edge.address))


def _only(sections: tuple[EnvSection, ...], keys: set[str]) -> tuple[EnvSection, ...]:
    kept = (EnvSection(section.title, tuple(var for var in section.variables if var.key in keys)) for section in sections)
    return tuple(section for section in kept if section.variables)


def _network(profile: Profile, advertised_ip: str, public_ip: str | None) -> NetworkPlan:
    subnet = profile.network.subnet
    return NetworkPlan(
        name=NETWORK_NAME,
        subnet=str(subnet),
        asterisk_ip=fixed_address(subnet, "asterisk"),
        local_nets=(str(subnet),),
        public_ip=public_ip,
        bind_ip="0.0.0.0",
        advertised_ip=advertised_ip,
        dynamic_range=str(dynamic_address_range(subnet)),
    )


def _bundle_plan(profile: Profile, secrets: Secrets | None, host: ClusterHost, ports: HostPorts, fallback: RtpRange, checkout: str | None) -> Plan:
    """The plan of hosts/<name>/: a single-host plan of this host's services only. Its compose file
    sits two folders below the output folder, so relative build contexts climb two more."""
    source = checkout if checkout is not None else profile.build.source
    checkout = source if source.startswith("/") else posixpath.join("../..", source)
    services = placement.services_of(host.roles)
    rtp = ports.bundle.ranges.get("asterisk", fallback)
    sip_port = ports.bundle.sip_port or _fallback_sip(profile)
    advertised_ip = str(placement.advertised(host))
    env = env_sections(profile, secrets, rtp, sip_port, _endpoints(profile, host), advertised_ip, _allowed_hosts(profile))
    keys = {key for name in services for key in env_keys(name)}
    wanted = set(COMMON_OUTPUTS) | {dest for role in host.roles for dest in ROLE_OUTPUTS.get(role, ())}
    return Plan(
        version=__version__,
        profile_hash=profile_hash(profile),
        project=profile.project.name,
        host_kind=host.host_kind(profile.host.kind),
        timezone=profile.project.timezone,
        network=_network(profile, advertised_ip, str(host.public_ip) if host.public_ip else None),
        rtp=rtp,
        sip_port=sip_port,
        https_port_suffix=url_port_suffix(profile.ports.https),
        listen=dict(LISTEN),
        images=service_images(profile, checkout),
        limits=limits_for(profile, host.calls or 0),
        published=published_ports(ports.bundle),
        env=_only(env, keys),
        workers={"celery": profile.workers.celery, "celery_concurrency": profile.workers.celery_concurrency, "dialer": profile.workers.dialer},
        outputs=tuple((template, dest) for template, dest in OUTPUTS if dest in wanted),
        **application_fields(profile, secrets, str(profile.network.subnet), placement.remote_asterisk_clients(profile, host)),
        services=services,
        bundle=BundleHost(host.name, str(host.address), tuple(host.roles)),
    )


def _fallback_sip(profile: Profile) -> int:
    """The first voice host's SIP port: what a plan without a voice host of its own carries (see Plan.rtp)."""
    first = placement.hosts_with(profile, "voice")[0]
    return first.sip_port or profile.ports.sip


def _stack_ports(ports: HostPorts, service: str) -> tuple[StackPort, ...]:
    entries = []
    for use in ports.stack.uses:
        if use.service != service:
            continue
        target_start = container_port(use)
        for offset in range(use.count):
            entries.append(StackPort(target_start + offset, use.start + offset, use.protocol, use.purpose))
    return tuple(entries)


def _constraints(role: str, host: str) -> tuple[str, ...]:
    return (f"node.labels.{placement.role_label(role)} == true", f"node.labels.{placement.host_label(host)} == true")


def _warnings(profile: Profile, layouts: dict[str, HostPorts]) -> tuple[PlanWarning, ...]:
    """Each host's host-kind caveats (caveats.plan_warnings, as for a single host of that kind), and Swarm's."""
    found: list[PlanWarning] = []
    for index, host in enumerate(profile.hosts):
        kind = host.host_kind(profile.host.kind)
        # The host as a single-host profile of its own kind: the caveats are the same.
        own = profile.host.model_copy(update={"kind": kind, "userland_proxy": host.proxy(profile.host.userland_proxy)})
        view = profile.model_copy(update={"host": own})
        for warning in plan_warnings(view, layouts[host.name].bundle):
            key = f"hosts.{index}.{warning.key.removeprefix('host.')}" if warning.key.startswith("host.") and host.kind else warning.key
            found.append(PlanWarning(key, f"{host.name}: {warning.message}"))
        if kind in {"lxc-unprivileged", "lxc-privileged"}:
            found.append(
                PlanWarning(
                    f"hosts.{index}.kind" if host.kind else "host.kind",
                    f"{host.name} is {hostkinds.facts(kind).label}: Swarm's overlay network needs the vxlan kernel module "
                    "loaded on the LXC host (a container cannot load it) and UDP 4789 open between the hosts",
                )
            )
    return tuple(found)


def make_cluster_plan(profile: Profile, secrets: Secrets | None, layout: Layout, checkout: str | None = None) -> Plan:
    """Everything stack.yml and the per-host bundles print. Raises nothing: the profile is valid."""
    layouts = {ports.host: ports for ports in layout.hosts}
    voice_hosts = placement.hosts_with(profile, "voice")
    first_voice = layout.first_rtp
    edge = placement.hosts_with(profile, "edge")[0]
    base_limits = limits_for(profile)
    replicas = {entry.name: getattr(profile.workers, entry.replicas) for entry in catalog() if entry.replicas}

    voice: list[VoiceHost] = []
    services: list[StackService] = []
    for host in voice_hosts:
        ports = layouts[host.name]
        service = placement.asterisk_service(host.name)
        folder = f"./hosts/{host.name}/asterisk"
        voice.append(
            VoiceHost(
                host=host.name,
                service=service,
                calls=host.calls or 0,
                rtp=ports.stack.ranges["asterisk"],
                sip_port=ports.stack.sip_port,
                advertised_ip=str(placement.advertised(host)),
                pjsip=SwarmObject(f"{service}-pjsip", _object_name(profile, f"{host.name}-pjsip"), f"{folder}/pjsip.conf", "/etc/asterisk/pjsip.conf"),
                rtp_conf=SwarmObject(f"{service}-rtp", _object_name(profile, f"{host.name}-rtp"), f"{folder}/rtp.conf", "/etc/asterisk/rtp.conf"),
                volumes=tuple((f"asterisk_{host.name}_{key.removeprefix('asterisk_')}", target) for key, target in ASTERISK_VOLUMES),
                site_volume=f"asterisk_{host.name}_site",
                application_confs=tuple(
                    SwarmObject(f"{service}-{name}", _object_name(profile, f"{host.name}-{name}"), f"{folder}/{name}.conf", f"/etc/asterisk/{name}.conf")
                    for name in ASTERISK_APPLICATION_CONFS
                ),
            )
        )
        services.append(
            StackService(
                service, "asterisk", host.name, "voice", _constraints("voice", host.name), _stack_ports(ports, "asterisk"), 1,
                limits_for(profile, host.calls)["asterisk"],
            )
        )  # fmt: skip
    for role in SINGLE_HOST_ROLES:
        holder = placement.hosts_with(profile, role)[0]
        for name in role_services(role):
            services.append(
                StackService(
                    name, name, holder.name, role, _constraints(role, holder.name), _stack_ports(layouts[holder.name], name),
                    replicas.get(name, 1), base_limits[name],
                )
            )  # fmt: skip
    services.sort(key=lambda service: service.name)

    hosts: list[HostBundle] = []
    for index, host in enumerate(profile.hosts):
        kind = host.host_kind(profile.host.kind)
        labels = (*(placement.role_label(role) for role in host.roles), placement.host_label(host.name))
        hosts.append(
            HostBundle(
                name=host.name,
                index=index,
                address=str(host.address),
                public_ip=str(host.public_ip) if host.public_ip else None,
                advertised_ip=str(placement.advertised(host)),
                roles=tuple(host.roles),
                services=tuple(sorted(service.name for service in services if service.host == host.name)),
                kind=kind,
                userland_proxy=hostkinds.effective_userland_proxy(kind, host.proxy(profile.host.userland_proxy)),
                labels=labels,
                ports=layouts[host.name],
                plan=_bundle_plan(profile, secrets, host, layouts[host.name], first_voice, checkout),
                calls=host.calls,
                peers=placement.peer_published(profile, host),
            )
        )

    stack_keys = {key for stack_service in services for key in env_keys(stack_service.base)} - set(placement.PER_VOICE_HOST_ENV_KEYS)
    # Every service reaches the others by name over the overlay network; Asterisk is the first voice host's.
    stack_endpoints = local_endpoints()
    for key in ("asterisk-ami", "asterisk-http"):
        stack_endpoints[key] = Endpoint(voice[0].service, LISTEN[key])
    env = env_sections(profile, secrets, first_voice, _fallback_sip(profile), stack_endpoints, str(placement.advertised(voice_hosts[0])), _allowed_hosts(profile))
    # Each voice host has its own Asterisk volumes; every other named volume is the stack's once.
    volumes = sorted(
        {key for key, mounts in VOLUME_MOUNTS.items() for user, _ in mounts if user != "asterisk"}
        | {name for host in voice for name, _ in host.volumes}
        | {host.site_volume for host in voice}
    )
    web = placement.hosts_with(profile, "web")[0]
    settings = BackendSettings()
    tls_version = f"${{{TLS_ID_VARIABLE}:-0}}"
    tls_prefix = profile.project.name[: MAX_SWARM_OBJECT_NAME - len("-tls-certificate-") - 12]
    cluster = ClusterPlan(
        stack_name=profile.project.name,
        overlay_name=NETWORK_NAME,
        subnet=str(profile.network.subnet),
        hosts=tuple(hosts),
        voice=tuple(voice),
        services=tuple(services),
        volumes=tuple(volumes),
        configs=(
            SwarmObject("nginx", _object_name(profile, "nginx"), f"./hosts/{edge.name}/nginx/nginx.conf", "/etc/nginx/nginx.conf"),
            SwarmObject("tls-certificate", f"{tls_prefix}-tls-certificate-{tls_version}", TLS_CERTIFICATE_FILE, "/etc/nginx/certs/fullchain.pem", True),
        ),
        secrets=(SwarmObject("tls-key", f"{tls_prefix}-tls-key-{tls_version}", TLS_KEY_FILE, "/etc/nginx/certs/privkey.pem", True),),
        backend_startup=SwarmObject(
            "backend-startup", _object_name(profile, "backend-startup"), f"./hosts/{web.name}/backend/startup.sh", BACKEND_STARTUP_SCRIPT
        ),
        backend_settings=SwarmObject(
            "backend-settings", _object_name(profile, "backend-settings"), f"./hosts/{web.name}/{settings.file}", settings.target
        ),
    )
    first = voice[0]
    return Plan(
        version=__version__,
        profile_hash=profile_hash(profile),
        project=profile.project.name,
        host_kind=profile.host.kind,
        timezone=profile.project.timezone,
        network=_network(profile, first.advertised_ip, None),
        # The first voice host's: every host's own is in cluster.voice (see ClusterPlan).
        rtp=first_voice,
        sip_port=first.sip_port,
        https_port_suffix=url_port_suffix(profile.ports.https),
        listen=dict(LISTEN),
        images=service_images(profile, checkout),
        limits=base_limits,
        published={},
        env=_only(env, stack_keys),
        workers={"celery": profile.workers.celery, "celery_concurrency": profile.workers.celery_concurrency, "dialer": profile.workers.dialer},
        outputs=STACK_OUTPUTS,
        **application_fields(profile, secrets, str(profile.network.subnet)),
        warnings=_warnings(profile, layouts),
        cluster=cluster,
    )


def check_stack_secrets(profile: Profile, secrets: Secrets, sidecar: str) -> None:
    """The stack's .env is single-quoted for sh and Compose alike; a secret it cannot carry is refused
    here (exit 2, at its sidecar key) rather than written wrongly. Generated secrets always fit."""
    if not profile.hosts:
        return
    try:
        raw = read_input(sidecar, limit=MAX_TOML_BYTES, what="secrets sidecar")  # already loaded; only the line numbers are wanted
        lines = key_lines(raw.decode("utf-8")) if raw is not None else {}
    except (OSError, UnicodeDecodeError, InputFileError):
        lines = {}
    issues = []
    for name in type(secrets).model_fields:
        value = getattr(secrets, name)
        if value is not None and (why := unrepresentable(value)):
            issues.append(
                InputIssue(
                    sidecar,
                    name,
                    f"a multi-host profile writes secrets single-quoted into the stack's .env, which deploy-stack.sh sources with sh: {why}",
                    line=lines.get((name,)),
                    hint="choose a secret without it, or delete the key to have one generated",
                )
            )
    if issues:
        raise ProfileError(issues)

"""Stage 2: derive every number, address and string the outputs print.

`make_single_plan` is a pure function of the validated profile, the resolved
secrets and the layout the loader checked; this module also holds the parts every
plan is made of, multi-host ones included (cluster.py assembles those; make.py
picks one or the other). Templates print plan values and nothing else, so a value that must
agree across files (the RTP range, a port, a URL) is computed exactly once here.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from omnigen import __version__
from omnigen.catalog.addressing import dynamic_address_range
from omnigen.catalog.application import (
    AMI_LOGINS,
    ARI_LOGINS,
    BACKEND_BASE_SETTINGS,
    BACKEND_CACHE_DATABASE,
    BACKEND_LOCAL_APPS,
    BACKEND_SETTINGS_FILE,
    BACKEND_SETTINGS_TARGET,
    COMPONENT_CONTEXTS,
    IMAGE_NOTES,
    SUPERUSER_FIRST_NAME,
    SUPERUSER_LAST_NAME,
    WEBRTC_IMAGES,
    AsteriskLogin,
    EnvRef,
    ImageNote,
)
from omnigen.catalog.hostkinds import effective_userland_proxy
from omnigen.catalog.media import RTPENGINE_PORTS_PER_CALL
from omnigen.catalog.services import (
    ACME_BOOTSTRAP_DIR,
    ACME_CLIENT_SCRIPT,
    ACME_HOST_DIR,
    ACME_LIVE_DIR,
    ACME_STATE_DIR,
    KAMAILIO_CONFIG,
    KAMAILIO_DISPATCHER_LIST,
    NGINX_RELOAD_SCRIPT,
    RTPENGINE_CONFIG,
    SITE_CONTAINER_DIR,
    SITE_HOST_DIR,
    SITE_INCLUDE_DIR,
    TLS_CONTAINER_DIR,
    TLS_HOST_DIR,
    Feature,
    HealthTiming,
    Service,
    catalog,
    listen_owner,
    listen_ports,
    resolve,
    runs_with,
)
from omnigen.catalog.services import (
    service as catalog_entry,
)
from omnigen.inputs.profile import VOLUME_KEYS, Profile, Secrets
from omnigen.plan.capacity import HostPorts, PortPlan, PortUse, RtpRange
from omnigen.plan.caveats import PlanWarning, plan_warnings
from omnigen.plan.feasibility import Layout
from omnigen.plan.firewall import FirewallPlan, Published, firewall_plan
from omnigen.plan.sizing import (
    DEFAULT_SIZE_HINT,
    KAMAILIO_PKG_MB,
    Sizing,
    format_cpus,
    kamailio_children,
    kamailio_shm_mb,
    rtpengine_threads,
    size,
)

NETWORK_NAME = "omnivoip_net"

# Ports services listen on inside the compose network (each service's catalog entry). Clients are told
# these, never a host-side port.
LISTEN = listen_ports()

# The superuser the backend's startup command creates (its user model signs in by e-mail).
SUPERUSER_EMAIL_USER = "admin"

# Ports of the WebRTC edge (components.webrtc), inside the compose network.
# None of them is published: browsers reach Kamailio through nginx's HTTPS
# port, and only rtpengine's media range is published.
EDGE_LISTEN = {**catalog_entry("kamailio").listen, **catalog_entry("rtpengine").listen}
WEBRTC_WS_PATH = "/ws"
# The dispatcher set of Asterisk in kamailio.cfg and dispatcher.list.
ASTERISK_DISPATCHER_SET = 1


# Where each named volume is mounted: (service, target), from the catalog. The compose files print these
# mounts and verify holds the rendered file to this table; import maps a site's volumes onto it.
def volume_mounts() -> dict[str, tuple[tuple[str, str], ...]]:
    """Each named volume's users, from the catalog's entries: key -> ((service, target), ...)."""
    mounts: dict[str, tuple[tuple[str, str], ...]] = {}
    for entry in catalog():
        for key, target in entry.volumes:
            mounts[key] = (*mounts.get(key, ()), (entry.name, target))
    return mounts


VOLUME_MOUNTS = volume_mounts()
assert tuple(VOLUME_MOUNTS) == VOLUME_KEYS, "every profile [volumes] key is a catalog volume, in the same order"


def named_mounts() -> dict[str, tuple[str, ...]]:
    """Each service's named-volume entries (`volumes:` short syntax), from its catalog entry, for both templates."""
    return {
        entry.name: tuple(f"{key}:{target}" + (":ro" if entry.volumes_read_only else "") for key, target in entry.volumes)
        for entry in catalog()
        if entry.volumes
    }


# The PostgreSQL services and their data volume: an adopted one keeps the password it was initialised with.
DATABASE_VOLUMES = {"postgresql": "postgres_data"}
DATABASE_PASSWORD_SCRIPT = "set-database-passwords.sh"


@dataclass(frozen=True)
class VolumePlan:
    """A named volume of the stack: its own (`<project>_<key>`), or an existing one adopted by its real name."""

    key: str
    adopted: str | None = None

    @property
    def definition(self) -> dict[str, object]:
        """Its top-level `volumes:` entry, as Compose reads it back."""
        return {"external": True, "name": self.adopted} if self.adopted else {}


def own_volumes() -> tuple[VolumePlan, ...]:
    return tuple(VolumePlan(key) for key in VOLUME_KEYS)


@dataclass(frozen=True)
class PublishedPort:
    """One `ports:` entry. Ranges have start < end; single ports start == end."""

    service: str
    host_ip: str
    host_start: int
    host_end: int
    container_start: int
    container_end: int
    protocol: str
    purpose: str

    @property
    def compose(self) -> str:
        def span(start: int, end: int) -> str:
            return str(start) if start == end else f"{start}-{end}"

        return (
            f"{self.host_ip}:{span(self.host_start, self.host_end)}:"
            f"{span(self.container_start, self.container_end)}/{self.protocol}"
        )

    @property
    def count(self) -> int:
        return self.host_end - self.host_start + 1


@dataclass(frozen=True)
class Limits:
    """One container's deploy.resources (sizing.py): limits capped to the host, and what it reserves."""

    memory: str
    cpus: str
    pids: int
    memory_reservation: str
    cpus_reservation: str


@dataclass(frozen=True)
class ServiceImage:
    image: str
    build: str | None
    # Where the image comes from, for `explain`: "registry", "checkout" (build.source) or "override" (build.<key>).
    origin: str = "registry"


@dataclass(frozen=True)
class AsteriskUser:
    """An AMI (manager.conf) or ARI (ari.conf) user and the secret its clients log in with."""

    user: str
    secret: str
    clients: tuple[str, ...]
    read: str = ""
    write: str = ""


@dataclass(frozen=True)
class Startup:
    """An entrypoint that replaces the image's (docs/application.md), and the command it runs, if any."""

    entrypoint: tuple[str, ...]
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackendStartup:
    """What backend/startup.sh (django-app's entrypoint) prints."""

    local_apps: tuple[str, ...] = BACKEND_LOCAL_APPS
    first_name: str = SUPERUSER_FIRST_NAME
    last_name: str = SUPERUSER_LAST_NAME
    # `manage.py shell -c`: exit status 0 when the superuser does not exist yet.
    user_missing_check: str = (
        "import os, sys; from django.contrib.auth import get_user_model; "
        "sys.exit(get_user_model().objects.filter(email=os.environ['DJANGO_SUPERUSER_EMAIL']).exists())"
    )



@dataclass(frozen=True)
class BackendSettings:
    """backend/omnigen_settings.py: the settings overlay every backend process loads (docs/application.md);
    the catalog mounts it (BACKEND_SETTINGS_FILE at BACKEND_SETTINGS_TARGET)."""

    file: str = BACKEND_SETTINGS_FILE
    target: str = BACKEND_SETTINGS_TARGET  # beside the image's own settings, so `from .production import *` works
    base: str = BACKEND_BASE_SETTINGS
    cache_database: int = BACKEND_CACHE_DATABASE


@dataclass(frozen=True)
class AsteriskAccess:
    """What Asterisk's manager.conf, http.conf and ari.conf say, and what the clients are told."""

    ami_port: int
    http_port: int
    ami: tuple[AsteriskUser, ...]
    ari: tuple[AsteriskUser, ...]
    # Networks allowed to log in to AMI: the compose network (and loopback). Never published.
    permit: tuple[str, ...]


@dataclass(frozen=True)
class EnvVar:
    key: str
    value: str
    secret: bool = False


@dataclass(frozen=True)
class EnvSection:
    title: str
    variables: tuple[EnvVar, ...]


@dataclass(frozen=True)
class LanPlan:
    """The ipvlan/macvlan network Asterisk joins with its own LAN address (network.mode != "bridge")."""

    name: str
    driver: str  # "ipvlan" or "macvlan"
    mode_option: str  # the driver option that picks the mode: ipvlan_mode / macvlan_mode
    mode_value: str  # l2 / bridge: plain L2 on the parent's segment
    parent: str
    subnet: str
    gateway: str
    ip_range: str  # just Asterisk's address, so Docker's IPAM never hands out another LAN address
    address: str


@dataclass(frozen=True)
class NetworkPlan:
    name: str
    subnet: str
    asterisk_ip: str
    local_nets: tuple[str, ...]
    public_ip: str | None
    bind_ip: str
    advertised_ip: str
    dynamic_range: str
    mode: str = "bridge"
    lan: LanPlan | None = None


@dataclass(frozen=True)
class SitePlan:
    """The operator's own Asterisk config (trunks, agents, dialplan, queues): `./site/asterisk/` beside
    docker-compose.yml, which omnigen never writes, mounted read-only; the generated configs #tryinclude it
    at their end, so a missing file is no error and the generated templates are defined before it."""

    host_dir: str
    container_dir: str
    include_dir: str  # relative to Asterisk's astetcdir (/etc/asterisk), as #tryinclude resolves it

    def include(self, name: str) -> str:
        return f"{self.include_dir}/{name}"


SITE = SitePlan(host_dir=SITE_HOST_DIR, container_dir=SITE_CONTAINER_DIR, include_dir=SITE_INCLUDE_DIR)


@dataclass(frozen=True)
class AcmePlan:
    """tls.mode = "acme": the lego service, the folder it shares with nginx, and how nginx learns of a renewal.

    No docker.sock: the client (running as nginx's user) installs a renewed pair in `live_dir` and touches
    `stamp`; nginx's wrapper script sees the stamp change within `watch_seconds` and runs `nginx -s reload`.
    """

    domain: str
    email: str
    server: str
    host_dir: str  # ./acme beside docker-compose.yml: lego's account and certificates, the webroot, the live pair
    state_dir: str
    webroot: str
    live_dir: str
    stamp: str
    bootstrap_dir: str  # ./certs, mounted read-only: the self-signed pair nginx starts with
    renew_days: int
    check_seconds: int
    retry_seconds: int
    watch_seconds: int
    probe_seconds: int
    self_check_url: str  # nginx's HTTP server on the compose network, ending in the challenge path
    client_script: str
    reload_script: str

    @property
    def certificate(self) -> str:
        return f"{self.live_dir}/fullchain.pem"

    @property
    def key(self) -> str:
        return f"{self.live_dir}/privkey.pem"

    @property
    def lego_certificate(self) -> str:
        return f"{self.state_dir}/lego/certificates/{self.domain}.crt"

    @property
    def lego_key(self) -> str:
        return f"{self.state_dir}/lego/certificates/{self.domain}.key"



@dataclass(frozen=True)
class TlsPlan:
    """Where nginx finds its certificate: a host folder mounted read-only into the container."""

    host_dir: str
    container_dir: str
    certificate: str
    key: str
    mode: str = "self-signed"
    # The pair the build writes (omnigen/inputs/tls.py), relative to the output folder; the key is written 0600
    # and, when the build runs as root, given to nginx's user (NGINX_UID).
    chain_output: str = "certs/fullchain.pem"
    key_output: str = "certs/privkey.pem"
    acme: AcmePlan | None = None

    @property
    def served_certificate(self) -> str:
        return self.acme.certificate if self.acme else self.certificate

    @property
    def served_key(self) -> str:
        return self.acme.key if self.acme else self.key


# The certificate nginx serves: ./certs next to docker-compose.yml, mounted read-only.
TLS = TlsPlan(
    host_dir=TLS_HOST_DIR,
    container_dir=TLS_CONTAINER_DIR,
    certificate=f"{TLS_CONTAINER_DIR}/fullchain.pem",
    key=f"{TLS_CONTAINER_DIR}/privkey.pem",
)


def _tls(profile: Profile) -> TlsPlan:
    tls = profile.tls
    if tls.mode != "acme":
        return replace(TLS, mode=tls.mode)
    assert profile.project.domain is not None and tls.acme_email is not None, "validation requires them in acme mode"
    state = ACME_STATE_DIR
    return replace(
        TLS,
        mode="acme",
        acme=AcmePlan(
            domain=profile.project.domain,
            email=tls.acme_email,
            server=tls.acme_server,
            host_dir=ACME_HOST_DIR,
            state_dir=state,
            webroot=f"{state}/webroot",
            live_dir=ACME_LIVE_DIR,
            stamp=f"{ACME_LIVE_DIR}/reload.stamp",
            bootstrap_dir=ACME_BOOTSTRAP_DIR,
            renew_days=30,
            check_seconds=12 * 3600,
            retry_seconds=300,
            watch_seconds=60,
            probe_seconds=10,
            self_check_url=f"http://nginx:{LISTEN['nginx-http']}/.well-known/acme-challenge/",
            client_script=ACME_CLIENT_SCRIPT,
            reload_script=NGINX_RELOAD_SCRIPT,
        ),
    )


@dataclass(frozen=True)
class RtpengineInterface:
    """One logical rtpengine interface: NAME/ADDRESS[!ADVERTISED]."""

    name: str
    address: str
    advertised: str | None

    @property
    def spec(self) -> str:
        return f"{self.name}/{self.address}" + (f"!{self.advertised}" if self.advertised else "")


@dataclass(frozen=True)
class WebrtcPlan:
    """Kamailio + rtpengine (components.webrtc): every address and port their
    configs, docker-compose.yml, nginx.conf and pjsip.conf must agree on."""

    kamailio_ip: str
    rtpengine_ip: str
    sip_port: int
    ws_port: int
    ctl_port: int
    ng_port: int
    http_port: int
    advertised_ip: str
    advertised_port: int
    domain: str | None
    ws_path: str
    wss_url: str
    asterisk_uri: str
    dispatcher_set: int
    internal: RtpengineInterface
    public: RtpengineInterface
    rtp: RtpRange
    ports_per_call: int
    shm_mb: int
    pkg_mb: int
    children: int
    rtpengine_threads: int

    @property
    def rtpengine_sock(self) -> str:
        return f"udp:{self.rtpengine_ip}:{self.ng_port}"

    @property
    def listen_ng(self) -> str:
        return f"{self.rtpengine_ip}:{self.ng_port}"

    @property
    def interfaces(self) -> tuple[RtpengineInterface, ...]:
        return (self.internal, self.public)

    @property
    def dispatcher_list(self) -> str:
        return KAMAILIO_DISPATCHER_LIST

    @property
    def kamailio_config(self) -> str:
        return KAMAILIO_CONFIG

    @property
    def rtpengine_config(self) -> str:
        return RTPENGINE_CONFIG

    @property
    def params(self) -> dict[str, object]:
        """The values the edge's catalog commands take from the profile (catalog/services.Param)."""
        return {"kamailio_shm_mb": self.shm_mb, "kamailio_pkg_mb": self.pkg_mb}

    @property
    def kamailio_command(self) -> tuple[str, ...]:
        return resolve(catalog_entry("kamailio").command, self.params)

    @property
    def kamailio_healthcheck(self) -> tuple[str, ...]:
        return tuple(str(arg) for arg in catalog_entry("kamailio").healthcheck)

    @property
    def rtpengine_command(self) -> tuple[str, ...]:
        return resolve(catalog_entry("rtpengine").command, self.params)

    @property
    def rtpengine_healthcheck(self) -> tuple[str, ...]:
        return tuple(str(arg) for arg in catalog_entry("rtpengine").healthcheck)


@dataclass(frozen=True)
class NetworkAttachment:
    """A network a service joins: with a fixed address (and a gateway priority on the LAN) or a dynamic one."""

    name: str
    address: str | None = None
    priority: int | None = None


@dataclass(frozen=True)
class SwarmDeploy:
    """stack.yml's deploy of one service: where Swarm places it and how it updates it."""

    endpoint_mode: str
    constraints: tuple[str, ...]
    stop_first: bool  # it publishes ports in host mode: the old task must free them before the new one starts


@dataclass(frozen=True)
class ServiceDefinition:
    """One service as docker-compose.yml or stack.yml prints it: its catalog entry (catalog/services.py)
    resolved for this profile and this file, in the order the file prints it. Templates print it through
    templates/_service.j2's `service` macro and decide nothing."""

    name: str
    gap: bool  # a blank line before it
    image: str
    build: str | None
    depends_on: tuple[str, ...]
    volumes: tuple[str, ...]  # bind mounts then named volumes, short syntax
    expose: tuple[int, ...]
    env_file: str | None
    environment: tuple[EnvRef, ...]
    ports: tuple[PublishedPort, ...] | tuple[StackPort, ...]
    networks: tuple[NetworkAttachment, ...]
    comment: tuple[str, ...]
    entrypoint: tuple[str, ...]
    command: tuple[str, ...]
    healthcheck: tuple[str | EnvRef, ...]
    health_timing: HealthTiming
    user: str | None
    cap_add: tuple[str, ...]
    replicas: int | None
    limits: Limits
    configs: tuple[SwarmObject, ...] = ()  # stack.yml: generated files as Swarm configs
    secrets: tuple[SwarmObject, ...] = ()
    swarm: SwarmDeploy | None = None  # stack.yml's services only


@dataclass(frozen=True)
class Plan:
    version: str
    profile_hash: str
    project: str
    host_kind: str
    timezone: str
    network: NetworkPlan
    rtp: RtpRange
    sip_port: int
    https_port_suffix: str  # "" for 443, ":8443" otherwise: what follows the host in https:// URLs
    listen: dict[str, int]
    images: dict[str, ServiceImage]
    limits: dict[str, Limits]
    published: dict[str, tuple[PublishedPort, ...]]
    env: tuple[EnvSection, ...]
    workers: dict[str, int]
    outputs: tuple[tuple[str, str], ...] = field(default=())
    # What each application service reads and where it comes from (application.SERVICE_ENV), sorted by name.
    service_env: dict[str, tuple[EnvRef, ...]] = field(default_factory=dict)
    asterisk: AsteriskAccess | None = None
    startup: dict[str, Startup] = field(default_factory=dict)  # services whose image's entrypoint is replaced
    healthchecks: dict[str, tuple[str | EnvRef, ...]] = field(default_factory=dict)  # each service's `test:`
    health_timing: dict[str, HealthTiming] = field(default_factory=dict)  # each service's catalog entry
    named_mounts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # VOLUME_MOUNTS per service, as `volumes:` entries
    cap_add: dict[str, tuple[str, ...]] = field(default_factory=dict)
    expose: dict[str, tuple[int, ...]] = field(default_factory=dict)  # what each application service listens on
    image_notes: tuple[ImageNote, ...] = IMAGE_NOTES
    backend: BackendStartup = field(default_factory=BackendStartup)
    backend_settings: BackendSettings = field(default_factory=BackendSettings)
    tls: TlsPlan = field(default_factory=lambda: TLS)
    site: SitePlan = field(default_factory=lambda: SITE)
    webrtc: WebrtcPlan | None = None
    # How the containers' resources fit the host (single-host plans; explain prints it).
    sizing: Sizing | None = None
    # What to open in front of the host, and firewall/nftables.conf (single-host plans).
    firewall: FirewallPlan | None = None
    # Non-fatal host-kind and network-mode caveats: build and explain print them.
    warnings: tuple[PlanWarning, ...] = ()
    # Multi-host profiles (omnigen/plan/cluster.py). A host's bundle plan runs only `services` (None:
    # every service) and says which host it is (`bundle`); the top-level plan holds the `cluster`.
    services: tuple[str, ...] | None = None
    bundle: BundleHost | None = None
    cluster: ClusterPlan | None = None
    volumes: tuple[VolumePlan, ...] = field(default_factory=own_volumes)
    # A topology (plan.make.make_topology): planned without secrets, so it holds none (no secret .env
    # variable, no Asterisk login); its bundles too. explain and doctor read it; render refuses it.
    secrets_withheld: bool = False

    @functools.cached_property
    def definitions(self) -> tuple[ServiceDefinition, ...]:
        """Every service docker-compose.yml (or stack.yml) prints, in order: each catalog entry resolved once per
        plan (a plan made with dataclasses.replace resolves its own)."""
        return stack_definitions(self, self.cluster) if self.cluster is not None else compose_definitions(self)

    @functools.cached_property
    def features(self) -> frozenset[Feature]:
        """The optional parts this plan runs (catalog/services.Feature)."""
        found: set[Feature] = set()
        if self.tls.acme is not None:
            found.add("acme")
        if self.webrtc is not None:
            found.add("webrtc")
        return frozenset(found)

    @property
    def params(self) -> dict[str, object]:
        """The profile's values the catalog's commands take (catalog/services.Param)."""
        return {"celery_concurrency": self.workers["celery_concurrency"], **(self.webrtc.params if self.webrtc else {})}

    @property
    def adopted_databases(self) -> tuple[str, ...]:
        """The PostgreSQL services whose data volume is adopted (set-database-passwords.sh sets their passwords)."""
        adopted = {volume.key for volume in self.volumes if volume.adopted}
        return tuple(service for service, key in DATABASE_VOLUMES.items() if key in adopted and self.runs(service))

    def runs(self, name: str) -> bool:
        """Whether this plan's compose file has the service (a multi-host bundle has its host's only;
        the ACME client and the WebRTC edge run with their feature)."""
        entry = next((entry for entry in catalog() if entry.name == name), None)
        if entry is not None and not runs_with(entry, self.features):
            return False
        return self.services is None or name in self.services

    @property
    def bundles(self) -> tuple[tuple[str, Plan], ...]:
        """(folder, plan) of every per-host bundle; none for a single-host profile."""
        return () if self.cluster is None else tuple((f"hosts/{host.name}", host.plan) for host in self.cluster.hosts)

    @functools.cached_property
    def secret_keys(self) -> frozenset[str]:
        """The .env keys that hold secrets."""
        return frozenset(var.key for section in self.env for var in section.variables if var.secret)

    def secret_variables(self, service: str) -> tuple[tuple[str, str], ...]:
        """(name in the container, .env key) of each secret variable the service receives from secrets/<service>.env."""
        secret = self.secret_keys
        return tuple(sorted((ref.name, ref.key) for ref in self.service_env.get(service, ()) if ref.key in secret))

    @functools.cached_property
    def plain_env(self) -> dict[str, tuple[EnvRef, ...]]:
        """Each service's `environment:` in docker-compose.yml: its variables but the secret ones (those come from secrets/<service>.env)."""
        secret = self.secret_keys
        return {service: tuple(ref for ref in refs if ref.key not in secret) for service, refs in self.service_env.items()}

    @functools.cached_property
    def secret_env(self) -> dict[str, tuple[EnvVar, ...]]:
        """`secrets/<service>.env` of each service this compose file runs: its secret variables."""
        if ("docker-compose.yml.j2", "docker-compose.yml") not in self.outputs:
            return {}  # the top-level plan of a multi-host profile: stack.yml, whose deploy script sets .env itself
        values = self.env_map
        files = {}
        for service in sorted(self.service_env):
            if not self.runs(service):
                continue
            present = tuple(EnvVar(name, values[key], True) for name, key in self.secret_variables(service) if key in values)
            if present:
                files[f"secrets/{service}.env"] = present
        return files

    @functools.cached_property
    def secret_files(self) -> frozenset[str]:
        """Every output that holds secrets (written 0600): each .env, secrets/*.env, manager.conf and ari.conf, the bundles' included."""
        names = {dest for _, dest in self.outputs if posixpath.basename(dest) == ".env" or dest in ASTERISK_SECRET_FILES} | set(self.secret_env)
        if self.runs("nginx") or self.cluster is not None:
            names.add(self.tls.key_output)
        for folder, part in self.bundles:
            names |= {f"{folder}/{name}" for name in part.secret_files}
        return frozenset(names)

    @functools.cached_property
    def env_map(self) -> dict[str, str]:
        return {var.key: var.value for section in self.env for var in section.variables}

    @property
    def secret_values(self) -> tuple[str, ...]:
        return tuple(var.value for section in self.env for var in section.variables if var.secret)

    @property
    def all_published(self) -> tuple[PublishedPort, ...]:
        return tuple(port for ports in self.published.values() for port in ports)


# --- Multi-host plans ([[hosts]], built by cluster.py): what stack.yml and each host's bundle print ---

# Swarm configs and secrets cannot change in place, so their names carry a version: the
# profile and omnigen version for generated files, the certificate's checksum for TLS (set by
# deploy-stack.sh; lint and `docker stack config` see the default).
TLS_ID_VARIABLE = "OMNIVOIP_TLS_ID"
# DNS round-robin, not a virtual IP: IPVS drops idle TCP connections after 900 s (PostgreSQL, Redis
# and AMI connections are long-lived; moby/moby#31208, docker-library/postgres#1110) and needs the
# ip_vs kernel module, which LXC hosts cannot load. Every port is published in host mode, which
# dnsrr allows (the routing mesh would need a virtual IP).
ENDPOINT_MODE = "dnsrr"


@dataclass(frozen=True)
class BundleHost:
    """What a bundle's docker-compose.yml declares about its host (`x-omnivoip-host`): rule OV110
    accepts a data service published on this private address and nowhere else."""

    name: str
    address: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class StackPort:
    """One stack.yml `ports:` entry in long syntax, host mode (media must bypass the routing mesh)."""

    target: int
    published: int
    protocol: str
    purpose: str


@dataclass(frozen=True)
class SwarmObject:
    """A Swarm config or secret: its key in stack.yml, its name in the swarm, the file it is read from."""

    key: str
    name: str
    file: str
    target: str
    interpolated: bool = False  # the name ends in ${OMNIVOIP_TLS_ID:-0}, filled by deploy-stack.sh


@dataclass(frozen=True)
class VoiceHost:
    """One Asterisk of stack.yml: its host, share of the calls, ports and advertised address."""

    host: str
    service: str
    calls: int
    rtp: RtpRange
    sip_port: int
    advertised_ip: str
    pjsip: SwarmObject
    rtp_conf: SwarmObject
    volumes: tuple[tuple[str, str], ...]  # (volume name, target)
    # The site's own Asterisk files (docs/site-config.md), read-only at SITE.container_dir: a volume on the voice
    # node, because Swarm neither bind-mounts the manager's ./site/asterisk onto another node nor starts a task
    # whose bind source is missing; a new, empty one includes nothing.
    site_volume: str
    # manager.conf, http.conf, ari.conf, extensions.conf, queues.conf: the same for every voice host.
    # Swarm configs, like pjsip.conf: `docker config inspect` on a manager shows them (AMI/ARI secrets included).
    application_confs: tuple[SwarmObject, ...] = ()

    @property
    def confs(self) -> tuple[SwarmObject, ...]:
        return (self.pjsip, self.rtp_conf, *self.application_confs)

    @property
    def env_literals(self) -> tuple[tuple[str, str], ...]:
        """The per-host Asterisk variables written into its stack.yml service (with ACD_HOSTNAME, its
        service name: placement.PER_VOICE_HOST_ENV_KEYS)."""
        return (
            ("ACD_RTP_PORT_MAX", str(self.rtp.end)),
            ("ACD_RTP_PORT_MIN", str(self.rtp.start)),
            ("ACD_SIP_PORT", str(self.sip_port)),
            ("EXTERNAL_IP", self.advertised_ip),
        )


@dataclass(frozen=True)
class StackService:
    """Where one stack.yml service runs and what it publishes there."""

    name: str
    base: str  # its service in a bundle (and in a single-host build): asterisk-voice1 -> asterisk
    host: str
    role: str
    constraints: tuple[str, ...]
    ports: tuple[StackPort, ...]
    replicas: int
    limits: Limits


@dataclass(frozen=True)
class HostBundle:
    """One host: its address, roles, the Swarm labels that place services there, and its bundle's plan."""

    name: str
    index: int
    address: str
    public_ip: str | None
    advertised_ip: str
    roles: tuple[str, ...]
    services: tuple[str, ...]
    kind: str
    userland_proxy: bool
    labels: tuple[str, ...]
    ports: HostPorts
    plan: Plan
    calls: int | None = None
    peers: tuple[str, ...] = ()  # data services published on `address` for clients on other hosts


@dataclass(frozen=True)
class ClusterPlan:
    """Everything about the hosts that stack.yml, label-nodes.sh and deploy-stack.sh print.

    Per-host values live here (`voice`: each Asterisk's range, SIP port and address; `hosts`:
    each bundle's plan). The top-level Plan's single-host fields that have no cluster-wide value
    (`rtp`, `sip_port`, `network.advertised_ip`) carry the first voice host's; read `voice` instead.
    """

    stack_name: str
    overlay_name: str
    subnet: str
    hosts: tuple[HostBundle, ...]
    voice: tuple[VoiceHost, ...]
    services: tuple[StackService, ...]
    volumes: tuple[str, ...]
    configs: tuple[SwarmObject, ...]
    secrets: tuple[SwarmObject, ...]
    backend_startup: SwarmObject | None = None  # backend/startup.sh, django-app's entrypoint (docs/application.md)
    backend_settings: SwarmObject | None = None  # backend/omnigen_settings.py, the backend's settings overlay
    tls_id_variable: str = TLS_ID_VARIABLE
    endpoint_mode: str = ENDPOINT_MODE

    @property
    def backend_objects(self) -> tuple[SwarmObject, ...]:
        """The backend's generated files as Swarm configs: startup.sh and the settings overlay."""
        return tuple(item for item in (self.backend_startup, self.backend_settings) if item is not None)

    def service(self, name: str) -> StackService:
        return next(service for service in self.services if service.name == name)

    def host(self, name: str) -> HostBundle:
        return next(host for host in self.hosts if host.name == name)

    def config(self, key: str) -> SwarmObject:
        return next(config for config in (*self.configs, *self.secrets) if config.key == key)

    @property
    def tls_files(self) -> tuple[str, ...]:
        """The certificate and key whose checksum deploy-stack.sh puts in their Swarm objects' names."""
        return tuple(item.file for item in (*self.configs, *self.secrets) if item.interpolated)


OUTPUTS: tuple[tuple[str, str], ...] = (
    ("docker-compose.yml.j2", "docker-compose.yml"),
    ("env.j2", ".env"),
    ("asterisk/rtp.conf.j2", "asterisk/rtp.conf"),
    ("asterisk/pjsip.conf.j2", "asterisk/pjsip.conf"),
    ("asterisk/manager.conf.j2", "asterisk/manager.conf"),
    ("asterisk/http.conf.j2", "asterisk/http.conf"),
    ("asterisk/ari.conf.j2", "asterisk/ari.conf"),
    ("asterisk/extensions.conf.j2", "asterisk/extensions.conf"),
    ("asterisk/queues.conf.j2", "asterisk/queues.conf"),
    ("backend/startup.sh.j2", "backend/startup.sh"),
    ("backend/omnigen_settings.py.j2", "backend/omnigen_settings.py"),
    ("nginx/nginx.conf.j2", "nginx/nginx.conf"),
)
# manager.conf and ari.conf hold the AMI and ARI secrets: written 0600 like the .env.
ASTERISK_SECRET_FILES = ("asterisk/manager.conf", "asterisk/ari.conf")

FIREWALL_OUTPUTS: tuple[tuple[str, str], ...] = (("firewall/nftables.conf.j2", "firewall/nftables.conf"),)

ACME_OUTPUTS: tuple[tuple[str, str], ...] = (
    ("tls/acme-renew.sh.j2", "tls/acme-renew.sh"),
    ("tls/nginx-reload-on-renewal.sh.j2", "tls/nginx-reload-on-renewal.sh"),
)

WEBRTC_OUTPUTS: tuple[tuple[str, str], ...] = (
    ("kamailio/kamailio.cfg.j2", "kamailio/kamailio.cfg"),
    ("kamailio/dispatcher.list.j2", "kamailio/dispatcher.list"),
    ("rtpengine/rtpengine.conf.j2", "rtpengine/rtpengine.conf"),
)

SECRET_FILES = frozenset({".env", *ASTERISK_SECRET_FILES})

# Secret-bearing variables reach services from generated `secrets/<service>.env` (env_file),
# never from `${...}` in the compose file: Compose would let any exported shell variable of the
# same name win over .env, and a service would then hold another password than the URLs built
# from the sidecar (docs/safe-output.md, "The operator's shell"). Each service gets those of its
# variables (its catalog entry's `environment`) whose .env key is secret.


def profile_hash(profile: Profile) -> str:
    """Identifies the user's choices: what the profile (and environment) set, defaults left out.

    A release that adds a key with a default leaves every existing profile's hash alone;
    the generator version in each header says which omnigen rendered it.
    """
    return hashlib.sha256(profile.model_dump_json(exclude_defaults=True).encode()).hexdigest()


def _url_secret(value: str) -> str:
    """Percent-encode a credential for the userinfo part of a URL (RFC 3986)."""
    return quote(value, safe="")


def nth_host(subnet: ipaddress.IPv4Network, n: int) -> str:
    """The address `n` hosts into the subnet (fixed service addresses live in its lower half)."""
    return str(subnet.network_address + n)


def fixed_address(subnet: ipaddress.IPv4Network, name: str) -> str:
    """A service's fixed address in the compose subnet (its catalog entry's host number)."""
    number = catalog_entry(name).address
    assert number is not None, f"{name} has no fixed address"
    return nth_host(subnet, number)


def limits_for(profile: Profile, calls: int | None = None, docker_proxy_mib: float = 0.0) -> dict[str, Limits]:
    """Per-service resources; Asterisk's grow with the calls it carries (a voice host's share with [[hosts]])."""
    return limits_of(size(profile, docker_proxy_mib, calls))


def limits_of(sized: Sizing) -> dict[str, Limits]:
    return {
        name: Limits(
            memory=f"{one.memory_limit_mib}M",
            cpus=format_cpus(one.cpus_limit),
            pids=one.pids,
            memory_reservation=f"{one.memory_reservation_mib}M",
            cpus_reservation=format_cpus(one.cpus_reservation),
        )
        for name, one in sized.services.items()
    }


def published_ports(layout: PortPlan) -> dict[str, tuple[PublishedPort, ...]]:
    """The `ports:` entries per service, from the one port layout the loader checked (feasibility.py)."""
    published: dict[str, tuple[PublishedPort, ...]] = {}
    for use in layout.uses:
        container_start = container_port(use)
        container_end = container_start + use.count - 1
        entry = PublishedPort(use.service, use.host_ip, use.start, use.end, container_start, container_end, use.protocol, use.purpose)
        published[use.service] = (*published.get(use.service, ()), entry)
    return published


def container_port(use: PortUse) -> int:
    """The container port a published port or range starts at: the LISTEN port it names, else the host port itself."""
    return LISTEN[use.listen] if use.listen else use.start


def allowed_hosts(domain: str | None, addresses: Iterable[ipaddress.IPv4Address | None]) -> str:
    """Django's ALLOWED_HOSTS: loopback, the domain, and the addresses browsers reach the web UI's host by."""
    hosts = ["localhost", "127.0.0.1", *([domain] if domain else []), *(str(address) for address in addresses if address is not None)]
    return ",".join(dict.fromkeys(hosts))


def _allowed_hosts(profile: Profile) -> str:
    network = profile.network
    return allowed_hosts(profile.project.domain, (network.public_ip, None if network.bind_ip.is_unspecified else network.bind_ip))


@dataclass(frozen=True)
class Endpoint:
    """Where a client reaches a service: the compose service name and its listen port on one host;
    another host's address and the port it publishes there with [[hosts]]."""

    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


# The listen ports clients are told an address of, in the .env (the service behind each is its catalog entry's).
ENDPOINT_KEYS = ("postgresql", "redis", "minio", "django-app", "dialer-api", "asterisk-ami", "asterisk-http")


def local_endpoints() -> dict[str, Endpoint]:
    """Every service on the same compose network: its name and the port it listens on."""
    return {key: Endpoint(listen_owner(key), LISTEN[key]) for key in ENDPOINT_KEYS}


def env_sections(
    profile: Profile,
    secrets: Secrets | None,
    rtp: RtpRange,
    sip_port: int,
    endpoints: dict[str, Endpoint] | None = None,
    advertised_ip: str | None = None,
    allowed_hosts: str | None = None,
) -> tuple[EnvSection, ...]:
    """The .env. A multi-host bundle passes the addresses its clients reach other hosts' services at,
    its voice host's advertised address and the edge host's names (omnigen/plan/cluster.py).
    Without secrets (a topology) the secret variables are left out."""
    at = endpoints or local_endpoints()
    def value(name: str) -> str:
        if secrets is None:
            return ""  # only secret variables hold it, and those are left out below
        resolved = getattr(secrets, name)
        assert resolved is not None, f"secret {name} was not resolved"
        return str(resolved)

    db = profile.database
    redis_password = value("redis_password")
    redis_base = f"redis://:{_url_secret(redis_password)}@{at['redis'].address}"
    advertised_ip = advertised_ip or str(_asterisk_advertised(profile))
    allowed_hosts = allowed_hosts or _allowed_hosts(profile)
    # Browsers reach the API on the same origin as the UI; the backend's default admits development ports.
    suffix = url_port_suffix(profile.ports.https)
    origins = ",".join(f"https://{host}{suffix}" for host in allowed_hosts.split(",") if host not in ("localhost", "127.0.0.1"))
    ami_backend, ami_dialer = AMI_LOGINS
    (ari_backend,) = ARI_LOGINS

    def plain(key: str, val: str | int) -> EnvVar:
        return EnvVar(key, str(val))

    def secret(key: str, val: str) -> EnvVar:
        return EnvVar(key, val, secret=True)

    sections = (
        EnvSection("General", (plain("TZ", profile.project.timezone),)),
        EnvSection(
            "PostgreSQL",
            (
                plain("POSTGRES_HOSTNAME", at["postgresql"].host),
                plain("POSTGRES_PORT", at["postgresql"].port),
                plain("POSTGRES_DB", db.name),
                plain("POSTGRES_USER", db.user),
                secret("POSTGRES_PASSWORD", value("postgres_password")),
            ),
        ),
        EnvSection(
            # Database 0: the backend's Celery broker; 1: the backend's cache (hard-coded in its settings,
            # base.py:216); 2: Celery results; 3: the dialer's Celery broker and campaign state.
            "Redis",
            (
                plain("REDIS_HOSTNAME", at["redis"].host),
                plain("REDIS_PORT", at["redis"].port),
                secret("REDIS_PASSWORD", redis_password),
                secret("REDIS_URL", f"{redis_base}/0"),
                secret("CELERY_BROKER_URL", f"{redis_base}/0"),
                secret("CELERY_RESULT_BACKEND", f"{redis_base}/2"),
                secret("DIALER_REDIS_URL", f"{redis_base}/3"),
            ),
        ),
        EnvSection(
            "MinIO object storage",
            (
                plain("MINIO_ROOT_USER", profile.storage.root_user),
                secret("MINIO_ROOT_PASSWORD", value("minio_root_password")),
                plain("BUCKET_NAME", profile.storage.bucket),
                plain("BUCKET_ENDPOINT_MINIO", f"http://{at['minio'].address}"),
                plain("S3_STORAGE_ENABLED", "true"),
            ),
        ),
        EnvSection(
            "Django",
            (
                secret("DJANGO_SECRET_KEY", value("django_secret_key")),
                plain("DJANGO_DEBUG", "false"),
                plain("DJANGO_ALLOWED_HOSTS", allowed_hosts),
                plain("CORS_ALLOWED_ORIGINS", origins or f"https://localhost{suffix}"),
                plain("DJANGO_SUPERUSER_EMAIL", f"{SUPERUSER_EMAIL_USER}@{profile.project.domain or 'omnivoip.invalid'}"),
                secret("DJANGO_SUPERUSER_PASSWORD", value("django_admin_password")),
            ),
        ),
        EnvSection(
            "Asterisk (manager.conf, ari.conf; reachable on the compose network only)",
            (
                plain("ACD_HOSTNAME", "asterisk"),
                plain("ACD_SIP_PORT", sip_port),
                plain("ACD_RTP_PORT_MIN", rtp.start),
                plain("ACD_RTP_PORT_MAX", rtp.end),
                plain("EXTERNAL_IP", advertised_ip),
                plain("ASTERISK_AMI_HOST", at["asterisk-ami"].host),
                plain("ASTERISK_AMI_PORT", at["asterisk-ami"].port),
                plain("ASTERISK_AMI_USER", ami_backend.user),
                secret("ASTERISK_AMI_SECRET", value(ami_backend.secret)),
                plain("DIALER_AMI_USER", ami_dialer.user),
                secret("DIALER_AMI_SECRET", value(ami_dialer.secret)),
                plain("ASTERISK_ARI_HOST", at["asterisk-http"].host),
                plain("ASTERISK_ARI_PORT", at["asterisk-http"].port),
                plain("ASTERISK_ARI_USER", ari_backend.user),
                secret("ASTERISK_ARI_PASSWORD", value(ari_backend.secret)),
            ),
        ),
        EnvSection(
            "Dialer",
            (
                plain("BACKEND_URL", f"http://{at['django-app'].address}"),
                plain("DIALER_API_URL", f"http://{at['dialer-api'].address}"),
            ),
        ),
    )
    if secrets is None:
        return tuple(EnvSection(section.title, tuple(var for var in section.variables if not var.secret)) for section in sections)
    return sections


def url_port_suffix(https_port: int) -> str:
    """What follows the host in an https:// URL: nothing for 443, `:PORT` otherwise."""
    return "" if https_port == 443 else f":{https_port}"


def _webrtc(profile: Profile, layout: PortPlan, asterisk_ip: str) -> WebrtcPlan:
    subnet = profile.network.subnet
    calls = profile.capacity.concurrent_calls
    # The layout profile validation checked: beside Asterisk's range, clear of every published port.
    rtp = layout.ranges["rtpengine"]
    rtpengine_ip = fixed_address(subnet, "rtpengine")
    # The address Asterisk advertises: validation refuses a profile where browsers could not reach the edge there.
    advertised_ip = str(_asterisk_advertised(profile))
    https = layout.https_port
    host = profile.project.domain or advertised_ip
    return WebrtcPlan(
        kamailio_ip=fixed_address(subnet, "kamailio"),
        rtpengine_ip=rtpengine_ip,
        sip_port=EDGE_LISTEN["kamailio-sip"],
        ws_port=EDGE_LISTEN["kamailio-ws"],
        ctl_port=EDGE_LISTEN["kamailio-ctl"],
        ng_port=EDGE_LISTEN["rtpengine-ng"],
        http_port=EDGE_LISTEN["rtpengine-http"],
        advertised_ip=advertised_ip,
        advertised_port=https,
        domain=profile.project.domain,
        ws_path=WEBRTC_WS_PATH,
        wss_url=f"wss://{host}{url_port_suffix(https)}{WEBRTC_WS_PATH}",
        asterisk_uri=f"sip:{asterisk_ip}:{layout.sip_port}",
        dispatcher_set=ASTERISK_DISPATCHER_SET,
        # Asterisk is on the compose network: it gets the container address.
        # Browsers get the advertised address; both share one socket address.
        internal=RtpengineInterface("internal", rtpengine_ip, None),
        public=RtpengineInterface("public", rtpengine_ip, advertised_ip),
        rtp=rtp,
        ports_per_call=RTPENGINE_PORTS_PER_CALL,
        shm_mb=kamailio_shm_mb(calls),
        pkg_mb=KAMAILIO_PKG_MB,
        children=kamailio_children(calls),
        rtpengine_threads=rtpengine_threads(calls),
    )


def _webrtc_env(secrets: Secrets | None, webrtc: WebrtcPlan) -> EnvSection:
    url = EnvVar("WEBRTC_WSS_URL", webrtc.wss_url)
    if secrets is None:  # a topology
        return EnvSection("WebRTC (Kamailio + rtpengine)", (url,))
    secret = secrets.webrtc_auth_secret
    assert secret is not None, "secret webrtc_auth_secret was not resolved"
    return EnvSection("WebRTC (Kamailio + rtpengine)", (EnvVar("WEBRTC_AUTH_SECRET", secret, secret=True), url))


def _with_webrtc(plan: Plan, profile: Profile, secrets: Secrets | None, layout: PortPlan, checkout: str | None) -> Plan:
    """Add Kamailio and rtpengine to a finished plan: their ports, limits, images, env and files."""
    webrtc = _webrtc(profile, layout, plan.network.asterisk_ip)
    media = PublishedPort(
        "rtpengine", plan.network.bind_ip, webrtc.rtp.start, webrtc.rtp.end, webrtc.rtp.start, webrtc.rtp.end, "udp", "WebRTC media (rtpengine)"
    )
    return replace(
        plan,
        images={
            **plan.images,
            "kamailio": _image(profile, "kamailio", checkout),
            "rtpengine": _image(profile, "rtpengine", checkout),
        },
        published={**plan.published, "rtpengine": (media,)},
        env=(*plan.env, _webrtc_env(secrets, webrtc)),
        outputs=plan.outputs + WEBRTC_OUTPUTS,
        webrtc=webrtc,
    )


def _image(profile: Profile, key: str, checkout: str | None) -> ServiceImage:
    """An OmniVoIP image: built from build.<key> if set, else from the checkout unless build.prebuilt."""
    image, override = getattr(profile.images, key), getattr(profile.build, key)
    if override is not None:
        return ServiceImage(image, override, "override")
    if profile.build.prebuilt:
        return ServiceImage(image, None, "registry")
    root = (checkout if checkout is not None else profile.build.source).rstrip("/")
    return ServiceImage(image, posixpath.normpath(posixpath.join(root, COMPONENT_CONTEXTS[key])), "checkout")


def service_images(profile: Profile, checkout: str | None = None) -> dict[str, ServiceImage]:
    """Every image. `checkout` is build.source as seen from the output folder (the compose file resolves
    contexts from there); without it the output folder is taken to be the profile's."""
    images = profile.images
    built = {key: _image(profile, key, checkout) for key in COMPONENT_CONTEXTS if key not in WEBRTC_IMAGES}
    return {
        "postgres": ServiceImage(images.postgres, None),
        "redis": ServiceImage(images.redis, None),
        "minio": ServiceImage(images.minio, None),
        **built,
        "nginx": ServiceImage(images.nginx, None),
    } | ({"acme": ServiceImage(images.acme, None)} if profile.tls.mode == "acme" else {})


def _asterisk_access(secrets: Secrets, subnet: str, remote_clients: tuple[str, ...] = ()) -> AsteriskAccess:
    def user(login: AsteriskLogin) -> AsteriskUser:
        secret = getattr(secrets, login.secret)
        assert secret is not None, f"secret {login.secret} was not resolved"
        return AsteriskUser(login.user, secret, login.clients, login.read, login.write)

    return AsteriskAccess(
        ami_port=LISTEN["asterisk-ami"],
        http_port=LISTEN["asterisk-http"],
        ami=tuple(user(login) for login in AMI_LOGINS),
        ari=tuple(user(login) for login in ARI_LOGINS),
        permit=("127.0.0.1/32", subnet, *(f"{address}/32" for address in remote_clients)),
    )




def _startup(params: dict[str, object]) -> dict[str, Startup]:
    """The services whose image's entrypoint is replaced (docs/application.md), resolved for the profile."""
    return {entry.name: Startup(resolve(entry.entrypoint, params), resolve(entry.command, params)) for entry in catalog() if entry.entrypoint}


def _service_env() -> dict[str, tuple[EnvRef, ...]]:
    return {entry.name: tuple(sorted(entry.environment, key=lambda ref: ref.name)) for entry in catalog() if entry.environment}


def application_fields(profile: Profile, secrets: Secrets | None, subnet: str, remote_clients: tuple[str, ...] = ()) -> dict[str, Any]:
    """The Plan fields that carry the application's contract (catalog/application.py), for single-host,
    per-host bundle and stack plans alike. `remote_clients`: other hosts' addresses whose services
    log in to this bundle's Asterisk through its private address. Without secrets (a topology): no Asterisk logins."""
    entries = catalog()
    return {
        "service_env": _service_env(),
        "asterisk": _asterisk_access(secrets, subnet, remote_clients) if secrets is not None else None,
        "secrets_withheld": secrets is None,
        "startup": _startup({"celery_concurrency": profile.workers.celery_concurrency}),
        "healthchecks": {entry.name: entry.healthcheck for entry in entries},
        "health_timing": {entry.name: entry.health_timing for entry in entries},
        "named_mounts": named_mounts(),
        "cap_add": {entry.name: entry.cap_add for entry in entries if entry.cap_add},
        "expose": {entry.name: tuple(entry.listen[key] for key in entry.expose) for entry in entries if entry.expose},
    }


def _mounts(plan: Plan, entry: Service) -> tuple[str, ...]:
    """A service's `volumes:` in docker-compose.yml: its bind mounts (for the features this plan has), then its named volumes."""
    found: list[str] = []
    for mount in entry.mounts:
        if mount.when is not None and mount.when not in plan.features:
            continue
        if mount.outputs:  # each generated file of the folder, over the image's own
            folder = mount.source.removeprefix("./") + "/"
            found += [f"./{dest}:{mount.target}/{dest.removeprefix(folder)}:ro" for dest in sorted(dest for _, dest in plan.outputs if dest.startswith(folder))]
        else:
            found.append(f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else ""))
    return (*found, *plan.named_mounts.get(entry.name, ()))


def _networks(plan: Plan, entry: Service) -> tuple[NetworkAttachment, ...]:
    network = plan.network
    if entry.address is None:
        return (NetworkAttachment(network.name),)
    attached: tuple[NetworkAttachment, ...] = (NetworkAttachment(network.name, fixed_address(ipaddress.IPv4Network(network.subnet), entry.name)),)
    if entry.joins_lan and network.lan is not None:
        # The LAN is its default route: SIP and RTP answer from the address phones reach.
        attached += (NetworkAttachment(network.lan.name, network.lan.address, LAN_GATEWAY_PRIORITY),)
    return attached


# The gateway priority of the LAN network (ipvlan/macvlan): above the compose network's default 0.
LAN_GATEWAY_PRIORITY = 100


def compose_definitions(plan: Plan) -> tuple[ServiceDefinition, ...]:
    """Every service docker-compose.yml runs, each catalog entry resolved for this plan."""
    params = plan.params
    plain_env = plan.plain_env
    definitions = []
    for entry in catalog():
        if not plan.runs(entry.name):
            continue
        image = plan.images[entry.image]
        env_file = f"secrets/{entry.name}.env"
        command_runs = entry.command_when is None or entry.command_when in plan.features
        definitions.append(
            ServiceDefinition(
                name=entry.name,
                gap=entry.gap,
                image=image.image,
                build=image.build,
                depends_on=tuple(other for other in entry.depends_on if plan.runs(other)),
                volumes=_mounts(plan, entry),
                expose=plan.expose.get(entry.name, ()),
                env_file=f"./{env_file}" if env_file in plan.secret_env else None,
                environment=plain_env.get(entry.name, ()),
                ports=plan.published.get(entry.name, ()),
                networks=_networks(plan, entry),
                comment=entry.comment,
                entrypoint=resolve(entry.entrypoint, params),
                command=resolve(entry.command, params) if command_runs else (),
                healthcheck=entry.healthcheck,
                health_timing=entry.health_timing,
                user=entry.user,
                cap_add=entry.cap_add,
                replicas=plan.workers[entry.replicas] if entry.replicas else None,
                limits=plan.limits[entry.name],
            )
        )
    return tuple(definitions)


def _stack_files(plan: Plan, cluster: ClusterPlan, stack_service: StackService) -> tuple[tuple[str, ...], tuple[SwarmObject, ...], tuple[SwarmObject, ...]]:
    """A stack.yml service's volumes, configs and secrets. Swarm does not bind-mount the manager's files
    onto another node: the generated files a compose service bind-mounts are Swarm configs (the TLS key a
    secret), and each voice host's Asterisk has volumes of its own."""
    voice = next((host for host in cluster.voice if host.service == stack_service.name), None)
    if voice is not None:
        volumes = (*(f"{name}:{target}" for name, target in voice.volumes), f"{voice.site_volume}:{plan.site.container_dir}:ro")
        configs: tuple[SwarmObject, ...] = tuple(sorted(voice.confs, key=lambda config: config.target))
        secrets: tuple[SwarmObject, ...] = ()
    else:
        volumes = plan.named_mounts.get(stack_service.base, ())
        configs = tuple(config for config in (*cluster.configs, *cluster.backend_objects) if _serves(plan, stack_service.base, config.target))
        secrets = tuple(secret for secret in cluster.secrets if _serves(plan, stack_service.base, secret.target))
    # A bind mount the stack cannot carry would be a service started without its file: refuse to print it.
    carried = [*(config.target for config in (*configs, *secrets)), *(volume.split(":")[1] for volume in volumes)]
    for mount in catalog_entry(stack_service.base).mounts:
        if (mount.when is None or mount.when in plan.features) and not any(_under(target, mount.target) for target in carried):
            raise ValueError(f"stack.yml has no Swarm config, secret or volume for {stack_service.name}'s {mount.source} at {mount.target}")
    return volumes, configs, secrets


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _serves(plan: Plan, name: str, target: str) -> bool:
    """Whether a Swarm config or secret stands in for one of the service's bind mounts (at or under its target)."""
    return any(_under(target, mount.target) for mount in catalog_entry(name).mounts if mount.when is None or mount.when in plan.features)


def stack_definitions(plan: Plan, cluster: ClusterPlan) -> tuple[ServiceDefinition, ...]:
    """Every stack.yml service, each catalog entry resolved for its host (cluster.services, by name)."""
    params = plan.params
    definitions = []
    for index, stack_service in enumerate(cluster.services):
        entry = catalog_entry(stack_service.base)
        voice = next((host for host in cluster.voice if host.service == stack_service.name), None)
        environment = plan.service_env.get(entry.name, ())
        if voice is not None:  # each Asterisk's own values, as literals (the stack's .env is shared)
            literals = {"ACD_HOSTNAME": voice.service, **dict(voice.env_literals)}
            environment = tuple(EnvRef(ref.name, literal=literals[ref.key]) if ref.key in literals else ref for ref in environment)
        volumes, configs, secrets = _stack_files(plan, cluster, stack_service)
        command_runs = entry.command_when is None or entry.command_when in plan.features
        definitions.append(
            ServiceDefinition(
                name=stack_service.name,
                gap=index > 0,
                image=plan.images[entry.image].image,
                build=None,  # docker stack deploy builds nothing: build.prebuilt images, or pushed ones
                depends_on=(),  # Swarm ignores depends_on: each service's health check and restarts order them
                volumes=volumes,
                configs=configs,
                secrets=secrets,
                expose=plan.expose.get(entry.name, ()),
                env_file=None,
                environment=environment,
                ports=stack_service.ports,
                networks=(NetworkAttachment(cluster.overlay_name),),
                comment=entry.comment,
                entrypoint=resolve(entry.entrypoint, params),
                command=resolve(entry.command, params) if command_runs else (),
                healthcheck=entry.healthcheck,
                health_timing=entry.health_timing,
                user=entry.user,
                cap_add=entry.cap_add,
                replicas=stack_service.replicas if stack_service.replicas != 1 else None,
                limits=stack_service.limits,
                swarm=SwarmDeploy(cluster.endpoint_mode, stack_service.constraints, bool(stack_service.ports)),
            )
        )
    return tuple(definitions)


def make_single_plan(profile: Profile, secrets: Secrets | None, checked: Layout, checkout: str | None = None) -> Plan:
    """Everything the templates print for a single-host profile, from the layout the loader checked (feasibility.py).

    `checkout` is build.source as the output folder sees it (pipeline.build computes it); without it
    the output folder is taken to be the profile's own."""
    layout = checked.single
    rtp = layout.ranges["asterisk"]
    subnet = profile.network.subnet
    lan = _lan(profile)
    # In bridge mode only the compose subnet is local: phones on the office LAN reach
    # Asterisk through the published ports, so they must be told the host address.
    # In a LAN mode phones on that LAN reach Asterisk's own address directly.
    local_nets = (str(subnet),) + ((lan.subnet,) if lan else ())
    advertised = _asterisk_advertised(profile)
    sized = size(profile, layout.cost(effective_userland_proxy(profile.host.kind, profile.host.userland_proxy)).memory_mib)
    plan = Plan(
        version=__version__,
        profile_hash=profile_hash(profile),
        project=profile.project.name,
        host_kind=profile.host.kind,
        timezone=profile.project.timezone,
        network=NetworkPlan(
            name=NETWORK_NAME,
            subnet=str(subnet),
            asterisk_ip=fixed_address(subnet, "asterisk"),
            dynamic_range=str(dynamic_address_range(subnet)),
            local_nets=local_nets,
            public_ip=str(profile.network.public_ip) if profile.network.public_ip else None,
            bind_ip=str(profile.network.bind_ip),
            advertised_ip=str(advertised),
            mode=profile.network.mode,
            lan=lan,
        ),
        rtp=rtp,
        sip_port=layout.sip_port,
        https_port_suffix=url_port_suffix(layout.https_port),
        listen=dict(LISTEN),
        images=service_images(profile, checkout),
        limits=limits_of(sized),
        sizing=sized,
        published=published_ports(layout),
        env=env_sections(profile, secrets, rtp, layout.sip_port),
        **application_fields(profile, secrets, str(subnet)),
        workers={
            "celery": profile.workers.celery,
            "celery_concurrency": profile.workers.celery_concurrency,
            "dialer": profile.workers.dialer,
        },
        outputs=OUTPUTS
        + FIREWALL_OUTPUTS
        + ((("set-database-passwords.sh.j2", DATABASE_PASSWORD_SCRIPT),) if _adopts_a_database(profile) else ())
        + (ACME_OUTPUTS if profile.tls.mode == "acme" else ()),
        tls=_tls(profile),
        warnings=plan_warnings(profile, layout) + _fit_warnings(checked) + _acme_warnings(profile, layout.http_port) + _sip_allow_warnings(profile),
        volumes=tuple(VolumePlan(key, profile.volumes.adopted().get(key)) for key in VOLUME_KEYS),
    )
    plan = _with_webrtc(plan, profile, secrets, layout, checkout) if profile.components.webrtc else plan
    return replace(plan, firewall=_firewall(profile, plan))


def _firewall(profile: Profile, plan: Plan) -> FirewallPlan:
    published = tuple(Published(port.service, port.host_ip, port.host_start, port.host_end, port.protocol, port.purpose) for port in plan.all_published)
    lan = plan.network.lan
    direct: tuple[Published, ...] = ()
    if lan is not None:
        direct = (
            Published("asterisk", lan.address, plan.sip_port, plan.sip_port, "udp", "SIP"),
            Published("asterisk", lan.address, plan.sip_port, plan.sip_port, "tcp", "SIP"),
            Published("asterisk", lan.address, plan.rtp.start, plan.rtp.end, "udp", "RTP media"),
        )
    return firewall_plan(
        plan.project,
        plan.network.subnet,
        published,
        plan.network.public_ip,
        tuple(str(network) for network in profile.network.sip_allow),
        direct,
        lan.address if lan else None,
    )


def _adopts_a_database(profile: Profile) -> bool:
    return any(key in profile.volumes.adopted() for key in DATABASE_VOLUMES.values())


def _fit_warnings(checked: Layout) -> tuple[PlanWarning, ...]:
    """A stack too big for the host kind's default size builds (profiles from before host.cpus/memory), with a warning."""
    problem = checked.default_size_misfit
    if problem is None:
        return ()
    return (PlanWarning(problem.key, f"{problem.message}; {DEFAULT_SIZE_HINT}"),)


def _sip_allow_warnings(profile: Profile) -> tuple[PlanWarning, ...]:
    network = profile.network
    if not network.sip_allow or network.lan is None:
        return ()
    return (
        PlanWarning(
            "network.sip_allow",
            f"in {network.mode} mode SIP reaches {network.lan.address} directly, never through this host's forward chain, so "
            "firewall/nftables.conf cannot limit it: apply network.sip_allow on the LAN's firewall (omnigen explain lists the openings)",
        ),
    )


def _acme_warnings(profile: Profile, http_port: int) -> tuple[PlanWarning, ...]:
    if profile.tls.mode != "acme" or http_port == 80:
        return ()
    return (
        PlanWarning(
            "ports.http",
            f"the ACME CA validates HTTP-01 on port 80 of {profile.project.domain}, but HTTP is published on {http_port}: "
            f"forward port 80 to {http_port} (router, cloud NAT) or the certificate is never issued",
        ),
    )


def _asterisk_advertised(profile: Profile) -> ipaddress.IPv4Address:
    """What SIP/SDP advertise: the NAT address, else Asterisk's own LAN address (LAN modes), else the host's."""
    return profile.network.advertised[1]


LAN_NETWORK_NAME = "omnivoip_lan"
LAN_DRIVER_MODES = {"ipvlan": ("ipvlan_mode", "l2"), "macvlan": ("macvlan_mode", "bridge")}


def _lan(profile: Profile) -> LanPlan | None:
    lan = profile.network.lan
    if lan is None or profile.network.mode not in LAN_DRIVER_MODES:
        return None
    option, value = LAN_DRIVER_MODES[profile.network.mode]
    return LanPlan(
        name=LAN_NETWORK_NAME,
        driver=profile.network.mode,
        mode_option=option,
        mode_value=value,
        parent=lan.parent,
        subnet=str(lan.subnet),
        gateway=str(lan.gateway),
        ip_range=f"{lan.address}/32",
        address=str(lan.address),
    )

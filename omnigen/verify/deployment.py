"""A deployment as the rules see it: the compose files parsed with positions,
interpolated from the .env, merged as Compose merges them, plus the
Asterisk/rtpengine configs the services mount.

The same loader serves `omnigen build` (files still in memory) and
`omnigen lint` (files on disk): only the `read` / `list_dir` callbacks differ.
What Compose would do is the reference for every step: which files it reads,
how it interpolates (.env only: shell variables are ignored so a lint result
does not depend on who runs it), how it merges override files, `extends` and
`include`, and where relative paths point.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from omnigen.catalog.services import RTPENGINE_CONFIG as RTPENGINE_CONFIG  # re-exported: rules/drift.py reads it from here
from omnigen.errors import InputFileError
from omnigen.formats import dotenv, yamlpos
from omnigen.formats.asteriskconf import ConfFile, Dialect, parse_conf
from omnigen.formats.composemerge import Location as Location  # re-exported: rules and importers use it from here
from omnigen.formats.composemerge import (
    Positioned,
    Where,
    flatten,
    merge,
    split_volume,
    strip_tags,
    to_mapping,
    where_from_lines,
)
from omnigen.formats.interpolate import interpolate

# Asterisk reads /etc/asterisk/<name>.conf; anything else is read only if #included.
ASTERISK_CONFIG_DIR = "/etc/asterisk"
KNOWN_CONFIGS = ("rtp.conf", "pjsip.conf", "rtpengine.conf", "manager.conf", "http.conf", "ari.conf", "extensions.conf", "queues.conf")
# The WebRTC edge's configs: rules/edge.py parses them itself (their formats are not Asterisk's).
EDGE_CONFIGS = ("kamailio.cfg", "dispatcher.list", "nginx.conf")

Reader = Callable[[str], str | None]
"""Text of a file, None when it does not exist; raises OSError/UnicodeError when it cannot be read,
InputFileError when it must not be read (not a regular file, too large: omnigen.inputs.inputfile)."""
Lister = Callable[[str], list[str] | None]
"""Names in a folder, None when it is not a folder."""

Path = yamlpos.Path
FileKind = Literal["compose", "env", "conf"]


@dataclass(frozen=True)
class LoadProblem:
    """Something in the input that Compose would refuse (error) or that lint could not follow (warning)."""

    location: Location
    message: str
    severity: Literal["error", "warning"] = "error"
    fatal: bool = False  # the deployment cannot be judged at all (lint exits 2)


@dataclass(frozen=True)
class Unresolved:
    """A `${VAR}` with no value in the .env: Compose substitutes an empty string."""

    name: str
    location: Location
    key: str
    message: str | None = None  # from ${VAR:?message}


@dataclass(frozen=True)
class Mount:
    """A host path a service sees: a bind mount, a named volume bound to a host path, or a Compose config."""

    service: str
    source: str  # as written
    host_path: str  # resolved against the project folder
    target: str
    read_only: bool
    location: Location
    kind: Literal["bind", "volume-bind", "config"]
    content: str | None = None  # inline `configs: content:` text


@dataclass
class MountedConfig:
    name: str  # rtp.conf, pjsip.conf, rtpengine.conf
    path: str  # as shown to users
    service: str
    target: str  # path inside the container
    conf: ConfFile
    text: str
    mount: Location  # where the compose file mounts it


@dataclass(frozen=True)
class MountedText:
    """An edge config (EDGE_CONFIGS) a service mounts, kept as text."""

    name: str
    path: str  # as shown to users
    service: str
    target: str  # path inside the container
    text: str
    mount: Location


@dataclass(frozen=True)
class Directive:
    """A `# omnigen: disable...` comment."""

    location: Location
    kind: Literal["line", "next-line", "service", "file"]
    rules: tuple[str, ...]
    reason: str
    target_line: int
    service: str | None = None


@dataclass
class Deployment:
    compose_files: list[str]
    data: dict[str, Any]
    positions: dict[Path, Location]
    env_path: str | None
    env: dict[str, str]
    env_lines: dict[str, int]
    env_raw: dict[str, str] = field(default_factory=dict)
    project_dir: str = ""
    unresolved: list[Unresolved] = field(default_factory=list)
    configs: list[MountedConfig] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    directives: list[Directive] = field(default_factory=list)
    # Pre-interpolation text of every string that contained a `$` (keyed by merged path).
    raw_strings: dict[Path, str] = field(default_factory=dict)
    file_kinds: dict[str, FileKind] = field(default_factory=dict)
    edge_configs: list[MountedText] = field(default_factory=list)
    # "swarm" for a `docker stack deploy` file (see swarm_stack): some settings mean something else there.
    orchestrator: Literal["compose", "swarm"] = "compose"

    @property
    def compose_path(self) -> str:
        return self.compose_files[0]

    # (the `services` mapping it was built from, the view): rules ask for it per service, so
    # rebuilding it on each access made a lint quadratic in the number of services.
    _services_view: tuple[object, dict[str, dict[str, Any]]] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        """Every service as a mapping (read-only by convention: it is cached while `data["services"]` is the same object)."""
        services = self.data.get("services")
        if self._services_view is not None and self._services_view[0] is services:
            return self._services_view[1]
        view = {str(name): svc if isinstance(svc, dict) else {} for name, svc in services.items()} if isinstance(services, dict) else {}
        self._services_view = (services, view)
        return view

    def where(self, *path: str | int) -> Location:
        """Location of `path` in the merged compose data, or of its closest located ancestor."""
        key: Path = tuple(path)
        while key:
            if key in self.positions:
                return self.positions[key]
            key = key[:-1]
        return self.positions.get((), Location(self.compose_path, 1))

    def line(self, *path: str | int) -> int:
        return self.where(*path).line

    def env_location(self, key: str) -> Location | None:
        if self.env_path and key in self.env_lines:
            return Location(self.env_path, self.env_lines[key])
        return None

    def config(self, name: str) -> MountedConfig | None:
        for config in self.configs:
            if config.name == name:
                return config
        return None

    def configs_named(self, name: str) -> list[MountedConfig]:
        """Every mounted config of this name: a Swarm stack runs one Asterisk, with its own rtp.conf, per voice host."""
        return [config for config in self.configs if config.name == name]

    def edge_config(self, name: str) -> MountedText | None:
        for config in self.edge_configs:
            if config.name == name:
                return config
        return None

    def service_env(self, name: str) -> dict[str, str]:
        """The container environment of a service (environment + env_file), as strings."""
        env = self.services.get(name, {}).get("environment")
        if not isinstance(env, dict):
            return {}
        return {str(key): "" if value is None else _scalar_text(value) for key, value in env.items()}

    def mounts(self, name: str) -> Iterator[Mount]:
        service = self.services.get(name, {})
        volumes = service.get("volumes")
        top_volumes = self.data.get("volumes") if isinstance(self.data.get("volumes"), dict) else {}
        assert isinstance(top_volumes, dict)
        if isinstance(volumes, list):
            for index, volume in enumerate(volumes):
                mount = self._volume_mount(name, index, volume, top_volumes)
                if mount:
                    yield mount
        configs = service.get("configs")
        top_configs = self.data.get("configs") if isinstance(self.data.get("configs"), dict) else {}
        assert isinstance(top_configs, dict)
        if isinstance(configs, list):
            for index, entry in enumerate(configs):
                source = entry.get("source") if isinstance(entry, dict) else entry
                target = entry.get("target") if isinstance(entry, dict) else None
                definition = top_configs.get(str(source))
                if not isinstance(definition, dict):
                    continue
                target = str(target or f"/{source}")
                location = self.where("services", name, "configs", index)
                if isinstance(definition.get("file"), str):
                    file = definition["file"]
                    yield Mount(name, file, self.host_path(file), target, True, location, "config")
                elif isinstance(definition.get("content"), str):
                    yield Mount(name, f"configs.{source}.content", "", target, True, location, "config", definition["content"])

    def _volume_mount(self, name: str, index: int, volume: Any, top_volumes: dict[str, Any]) -> Mount | None:
        location = self.where("services", name, "volumes", index)
        if isinstance(volume, str):
            parts = split_volume(volume)
            if len(parts) < 2:
                return None
            source, target = parts[0], parts[1]
            options = parts[2].split(",") if len(parts) > 2 else []
            read_only = "ro" in options
            if _is_host_path(source):
                return Mount(name, source, self.host_path(source), target, read_only, location, "bind")
            return self._named_volume_mount(name, source, target, read_only, location, top_volumes)
        if isinstance(volume, dict):
            long_source, long_target = volume.get("source"), volume.get("target")
            read_only = truthy(volume.get("read_only"))
            if not isinstance(long_source, str) or not isinstance(long_target, str):
                return None
            if volume.get("type") == "bind":
                return Mount(name, long_source, self.host_path(long_source), long_target, read_only, location, "bind")
            if volume.get("type", "volume") == "volume":
                return self._named_volume_mount(name, long_source, long_target, read_only, location, top_volumes)
        return None

    def _named_volume_mount(
        self, name: str, source: str, target: str, read_only: bool, location: Location, top_volumes: dict[str, Any]
    ) -> Mount | None:
        """A named volume declared with `driver_opts: {o: bind, device: PATH}` is a bind mount of PATH."""
        definition = top_volumes.get(source)
        if not isinstance(definition, dict):
            return None
        options = definition.get("driver_opts")
        if not isinstance(options, dict) or not isinstance(options.get("device"), str):
            return None
        if "bind" not in str(options.get("o", "")).split(","):
            return None
        device = options["device"]
        return Mount(name, device, self.host_path(device), target, read_only, location, "volume-bind")

    def host_path(self, source: str) -> str:
        """Where a host path written in the compose file points (relative paths start at the project folder)."""
        if source.startswith("~"):
            return source
        path = posixpath.normpath(posixpath.join(self.project_dir, source))
        # normpath keeps a leading `//` (POSIX leaves it implementation-defined); Linux reads it as `/`.
        return "/" + path.lstrip("/") if path.startswith("//") else path


def _is_host_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or (len(source) > 1 and source[1] == ":")


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "on", "1", "y"}
    return bool(value) if isinstance(value, int) else False


def _scalar_text(value: Any) -> str:
    """How Compose writes a YAML scalar into an environment value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Loader:
    """Reads, interpolates and merges the compose files of one project."""

    def __init__(self, read: Reader, display: Callable[[str], str], deployment: Deployment) -> None:
        self.read = read
        self.display = display
        self.deployment = deployment
        self.service_lines: dict[tuple[str, int], str] = {}
        # Files read through extends/include, once each however many services point at them.
        self.loaded: dict[str, Positioned | None] = {}

    def text(self, path: str, *, fatal: bool, what: str, kind: FileKind, missing: str | None = None) -> str | None:
        """The file's text; a problem is recorded when it cannot be read, or is missing and `missing` says why that matters."""
        shown = self.display(path)
        try:
            text = self.read(path)
        except InputFileError as exc:
            # Never judged without it: a FIFO or /dev/zero is hostile input, not a missing file.
            self.deployment.problems.append(LoadProblem(Location(shown, 1), f"{what} {exc.problem}; {exc.hint}", fatal=True))
            return None
        except (OSError, UnicodeError) as exc:
            self.deployment.problems.append(LoadProblem(Location(shown, 1), f"cannot read {what}: {exc}", fatal=fatal))
            return None
        if text is None:
            if missing is not None:
                self.deployment.problems.append(LoadProblem(Location(shown, 1), missing, fatal=fatal))
            return None
        self.deployment.texts[shown] = text
        self.deployment.file_kinds[shown] = kind
        return text

    def compose_file(self, path: str, env: dict[str, str], project_dir: str, stack: tuple[str, ...] = ()) -> Positioned | None:
        """One compose file, interpolated, with its `extends` and `include` resolved."""
        if stack and path in self.loaded:
            return self.loaded[path]
        loaded = self._compose_file(path, env, project_dir, stack)
        if stack:
            self.loaded[path] = loaded
        return loaded

    def _compose_file(self, path: str, env: dict[str, str], project_dir: str, stack: tuple[str, ...]) -> Positioned | None:
        shown = self.display(path)
        text = self.text(path, fatal=not stack, what="compose file", kind="compose", missing="compose file not found")
        if text is None:
            return None
        try:
            located = yamlpos.load(text)
        except yamlpos.YamlError as exc:
            self.deployment.problems.append(LoadProblem(Location(shown, exc.line or 1), f"invalid YAML: {exc}", fatal=not stack))
            return None
        if located.data is None:
            located.data = {}
        if not isinstance(located.data, dict):
            self.deployment.problems.append(LoadProblem(Location(shown, 1), "a compose file must be a mapping at the top level", fatal=not stack))
            return None
        for duplicate in located.duplicates:
            key = ".".join(str(part) for part in duplicate.path)
            self.deployment.problems.append(
                LoadProblem(
                    Location(shown, duplicate.line),
                    f"{key} is given twice in one mapping (first on line {duplicate.first_line}); Compose refuses the file and other tools keep the last value",
                )
            )
        services = located.data.get("services")
        if isinstance(services, dict):
            for name in services:
                self.service_lines[(shown, located.lines.get(("services", name), 0))] = str(name)
        where = where_from_lines(located.lines, shown)
        data = self._interpolate(located.data, env, (), where)
        file_dir = posixpath.dirname(path)
        if stack and posixpath.normpath(file_dir) != posixpath.normpath(project_dir):
            data = _rebase_paths(data, file_dir, project_dir)
        positioned: Positioned = (data, where)
        positioned = self._extends(positioned, path, env, project_dir, (*stack, path))
        positioned = self._include(positioned, path, env, project_dir, (*stack, path))
        return positioned

    def _interpolate(self, node: Any, env: dict[str, str], path: Path, where: Where) -> Any:
        if isinstance(node, dict):
            return {key: self._interpolate(value, env, (*path, key), where.child(key)) for key, value in node.items()}
        if isinstance(node, list):
            return [self._interpolate(value, env, (*path, index), where.child(index)) for index, value in enumerate(node)]
        if isinstance(node, yamlpos.Override):
            return yamlpos.Override(self._interpolate(node.value, env, path, where))
        if isinstance(node, str) and "$" in node:
            result = interpolate(node, env)
            dotted = ".".join(str(part) for part in path)
            for name in result.missing:
                self.deployment.unresolved.append(Unresolved(name, where.at, dotted, result.required.get(name)))
            for bad in result.invalid:
                self.deployment.problems.append(
                    LoadProblem(where.at, f"{dotted}: invalid interpolation {bad!r}; Compose refuses it (write $$ for a literal $)")
                )
            where.raw = node
            return result.value
        return node

    def _extends(self, positioned: Positioned, path: str, env: dict[str, str], project_dir: str, stack: tuple[str, ...]) -> Positioned:
        data, where = positioned
        services = data.get("services")
        if not isinstance(services, dict) or not any(isinstance(s, dict) and "extends" in s for s in services.values()):
            return positioned
        resolved: dict[str, Positioned] = {}

        def resolve(name: str, chain: tuple[str, ...]) -> Positioned:
            if name in resolved:
                return resolved[name]
            service = services.get(name)
            service_where = where.child("services").child(name)
            if not isinstance(service, dict) or "extends" not in service:
                return (service, service_where)
            spec = service["extends"]
            base_name = spec if isinstance(spec, str) else spec.get("service") if isinstance(spec, dict) else None
            base_file = spec.get("file") if isinstance(spec, dict) else None
            own = ({key: value for key, value in service.items() if key != "extends"}, service_where)
            base: Positioned | None = None
            if base_file:
                other = posixpath.normpath(posixpath.join(posixpath.dirname(path), str(base_file)))
                if other in stack:
                    self.deployment.problems.append(LoadProblem(service_where.child("extends").at, f"extends loops back to {base_file}"))
                else:
                    loaded = self.compose_file(other, env, project_dir, stack)
                    if loaded is not None:
                        other_services = loaded[0].get("services") or {}
                        if isinstance(other_services, dict) and base_name in other_services:
                            base = (other_services[base_name], loaded[1].child("services").child(str(base_name)))
            elif isinstance(base_name, str) and (base_name in chain or base_name == name):
                before = chain[chain.index(base_name) :] if base_name in chain else ()
                loop = " -> ".join([*before, name, base_name])
                self.deployment.problems.append(
                    LoadProblem(service_where.child("extends").at, f"extends loops back: {loop}; Compose refuses it, break the loop")
                )
                resolved[name] = own
                return own
            elif isinstance(base_name, str) and base_name in services:
                base = resolve(base_name, (*chain, name))
            if base is None:
                self.deployment.problems.append(
                    LoadProblem(service_where.child("extends").at, f"service {name!r} extends {base_name!r}, which cannot be found")
                )
                result = own
            else:
                result = merge(base, own, ("services", name))
            resolved[name] = result
            return result

        merged_services = {}
        services_where = Where(where.child("services").at, dict(where.child("services").kids))
        for name in services:
            merged_services[name], services_where.kids[name] = resolve(name, ())
        return {**data, "services": merged_services}, Where(where.at, {**where.kids, "services": services_where})

    def _include(self, positioned: Positioned, path: str, env: dict[str, str], project_dir: str, stack: tuple[str, ...]) -> Positioned:
        data, where = positioned
        entries = data.get("include")
        if not entries:
            return positioned
        include_where = where.child("include")
        result: Positioned = ({key: value for key, value in data.items() if key != "include"}, where)
        for index, entry in enumerate(entries if isinstance(entries, list) else [entries]):
            paths = entry.get("path") if isinstance(entry, dict) else entry
            for relative in paths if isinstance(paths, list) else [paths]:
                if not isinstance(relative, str):
                    continue
                other = posixpath.normpath(posixpath.join(posixpath.dirname(path), relative))
                if other in stack:
                    self.deployment.problems.append(LoadProblem(include_where.child(index).at, f"include loops back to {relative}"))
                    continue
                included_env = dict(env)
                env_text = self.text(posixpath.join(posixpath.dirname(other), ".env"), fatal=False, what=".env", kind="env")
                if env_text is not None:
                    with contextlib.suppress(dotenv.DotenvError):
                        included_env = {**dotenv.as_dict(dotenv.parse(env_text)), **env}
                loaded = self.compose_file(other, included_env, project_dir, stack)
                if loaded is None:
                    self.deployment.problems.append(LoadProblem(include_where.child(index).at, f"included file {relative} cannot be read"))
                    continue
                result = merge(loaded, result, ())
        return result


def _rebase_paths(data: dict[str, Any], file_dir: str, project_dir: str) -> dict[str, Any]:
    """Relative host paths in a file loaded from another folder (extends/include) point from that folder."""

    def rebase(source: str) -> str:
        if not source.startswith(".") or source.startswith("~"):
            return source
        moved = posixpath.relpath(posixpath.normpath(posixpath.join(file_dir, source)), project_dir or ".")
        return moved if moved.startswith((".", "/")) else "./" + moved

    services = data.get("services")
    if not isinstance(services, dict):
        return data
    rebased: dict[str, Any] = {}
    for name, service in services.items():
        if not isinstance(service, dict):
            rebased[name] = service
            continue
        service = dict(service)
        volumes = service.get("volumes")
        if isinstance(volumes, list):
            moved = []
            for volume in volumes:
                if isinstance(volume, str):
                    parts = split_volume(volume)
                    if len(parts) > 1 and _is_host_path(parts[0]):
                        volume = ":".join([rebase(parts[0]), *parts[1:]])
                elif isinstance(volume, dict) and volume.get("type") == "bind" and isinstance(volume.get("source"), str):
                    volume = {**volume, "source": rebase(volume["source"])}
                moved.append(volume)
            service["volumes"] = moved
        env_files = service.get("env_file")
        if isinstance(env_files, str):
            service["env_file"] = rebase(env_files)
        elif isinstance(env_files, list):
            service["env_file"] = [
                rebase(item) if isinstance(item, str) else {**item, "path": rebase(str(item.get("path", "")))} if isinstance(item, dict) else item
                for item in env_files
            ]
        rebased[name] = service
    return {**data, "services": rebased}


def load_deployment(
    compose_files: str | Sequence[str],
    read: Reader,
    list_dir: Lister,
    *,
    env_path: str | None = None,
    display: Callable[[str], str] = lambda path: path,
) -> Deployment:
    """Load a deployment. Paths are POSIX paths that `read`/`list_dir` understand; the first file's folder is the project folder."""
    files = [compose_files] if isinstance(compose_files, str) else list(compose_files)
    project_dir = posixpath.dirname(files[0])
    deployment = Deployment(compose_files=[display(path) for path in files], data={}, positions={}, env_path=None, env={}, env_lines={})
    deployment.project_dir = project_dir
    loader = _Loader(read, display, deployment)

    explicit_env = env_path is not None
    env_path = env_path or posixpath.join(project_dir, ".env")
    env_text = loader.text(env_path, fatal=True, what=".env file", kind="env", missing="env file not found" if explicit_env else None)
    if env_text is not None:
        _load_env(deployment, display(env_path), env_text)

    merged: Positioned | None = None
    for path in files:
        loaded = loader.compose_file(path, deployment.env, project_dir)
        if loaded is None:
            continue
        merged = loaded if merged is None else merge(merged, loaded, ())
    if merged is None:
        merged = ({}, Where(Location(deployment.compose_path, 1)))
    data, where = strip_tags(merged)
    data, where = _normalise_services(data, where, loader, deployment)
    deployment.data = data
    deployment.orchestrator = "swarm" if swarm_stack(data) else "compose"
    deployment.positions = flatten(where)
    deployment.raw_strings = {path: node.raw for path, node in _walk_where(where) if node.raw is not None}
    _collect_configs(deployment, read, list_dir, display, loader)
    _collect_directives(deployment, loader.service_lines)
    return deployment


def swarm_stack(data: dict[str, Any]) -> bool:
    """A file written for `docker stack deploy`: an overlay network, a placement constraint or a
    port with a publishing mode are Swarm's alone (Compose ignores or refuses them)."""
    networks = data.get("networks")
    if isinstance(networks, dict) and any(isinstance(net, dict) and net.get("driver") == "overlay" for net in networks.values()):
        return True
    services = data.get("services")
    for service in services.values() if isinstance(services, dict) else ():
        if not isinstance(service, dict):
            continue
        deploy = service.get("deploy")
        if isinstance(deploy, dict) and isinstance(deploy.get("placement"), dict):
            return True
        if any(isinstance(port, dict) and port.get("mode") in ("host", "ingress") for port in service.get("ports") or []):
            return True
    return False


def _walk_where(where: Where, prefix: Path = ()) -> Iterator[tuple[Path, Where]]:
    yield prefix, where
    for key, kid in where.kids.items():
        yield from _walk_where(kid, (*prefix, key))


def _load_env(deployment: Deployment, shown: str, text: str) -> None:
    deployment.env_path = shown
    try:
        entries = dotenv.parse(text)
    except dotenv.DotenvError as exc:
        line = int(match.group(1)) if (match := re.match(r"line (\d+)", str(exc))) else 1
        deployment.problems.append(LoadProblem(Location(shown, line), f"invalid .env: {exc}", fatal=True))
        return
    for entry in entries:
        value = entry.value
        if entry.quoted != "'" and "$" in entry.raw:
            # Values may reference variables defined earlier in the file, as Compose resolves them.
            result = interpolate(entry.raw if entry.quoted == "" else dotenv.decode_escapes(entry.raw), deployment.env)
            value = result.value
            for name in result.missing:
                deployment.unresolved.append(Unresolved(name, Location(shown, entry.line), entry.key, result.required.get(name)))
        deployment.env[entry.key] = value
        deployment.env_lines[entry.key] = entry.line
        deployment.env_raw[entry.key] = entry.raw


def _normalise_services(data: dict[str, Any], where: Where, loader: _Loader, deployment: Deployment) -> Positioned:
    """Give list-or-mapping attributes one shape (mapping) and fold env_file into environment."""
    services = data.get("services")
    if not isinstance(services, dict):
        return data, where
    services_where = where.child("services")
    new_services: dict[str, Any] = {}
    new_where = Where(services_where.at, dict(services_where.kids))
    for name, service in services.items():
        service_where = services_where.child(name)
        if not isinstance(service, dict):
            new_services[name] = service
            continue
        service = dict(service)
        kids = dict(service_where.kids)
        for attribute in ("environment", "sysctls", "labels"):
            if attribute in service:
                service[attribute], kids[attribute] = to_mapping((service[attribute], service_where.child(attribute)))
        env_from_files = _env_files(name, service, Where(service_where.at, kids), loader, deployment)
        if env_from_files is not None:
            file_env, file_where = env_from_files
            own, own_where = service.get("environment") or {}, kids.get("environment") or Where(service_where.at)
            combined = {**file_env, **(own if isinstance(own, dict) else {})}
            service["environment"] = combined
            kids["environment"] = Where(own_where.at, {**file_where.kids, **own_where.kids})
        new_services[name] = service
        new_where.kids[name] = Where(service_where.at, kids)
    return {**data, "services": new_services}, Where(where.at, {**where.kids, "services": new_where})


def _env_files(name: str, service: dict[str, Any], where: Where, loader: _Loader, deployment: Deployment) -> Positioned | None:
    spec = service.get("env_file")
    if spec is None:
        return None
    entries = spec if isinstance(spec, list) else [spec]
    env: dict[str, str] = {}
    kids: dict[str | int, Where] = {}
    for index, entry in enumerate(entries):
        path = entry.get("path") if isinstance(entry, dict) else entry
        required = not isinstance(entry, dict) or truthy(entry.get("required", True))
        if not isinstance(path, str):
            continue
        host = deployment.host_path(path)
        text = loader.text(host, fatal=False, what="env_file", kind="env")
        if text is None:
            if required:
                deployment.problems.append(LoadProblem(where.child("env_file").child(index).at, f"env_file {path} of service {name!r} does not exist"))
            continue
        shown = loader.display(host)
        try:
            parsed = dotenv.parse(text)
        except dotenv.DotenvError as exc:
            deployment.problems.append(LoadProblem(Location(shown, 1), f"invalid env_file: {exc}"))
            continue
        for item in parsed:
            value = item.value
            if item.quoted != "'" and "$" in item.raw:
                # Compose reads an env_file as it reads .env: `$$` is a literal `$`, `${VAR}` interpolates.
                value = interpolate(item.raw if item.quoted == "" else dotenv.decode_escapes(item.raw), deployment.env).value
            env[item.key] = value
            kids[item.key] = Where(Location(shown, item.line))
    return env, Where(where.at, kids)


def _collect_configs(deployment: Deployment, read: Reader, list_dir: Lister, display: Callable[[str], str], loader: _Loader) -> None:
    for service_name in deployment.services:
        for mount in deployment.mounts(service_name):
            if mount.content is not None:
                name = posixpath.basename(mount.target)
                if name in KNOWN_CONFIGS + EDGE_CONFIGS:
                    _add_config(deployment, name, mount.location.file, service_name, mount.target, mount.content, mount.location)
                continue
            base = posixpath.basename(mount.host_path)
            if base in KNOWN_CONFIGS + EDGE_CONFIGS:
                candidates = [(mount.host_path, mount.target, base)]
            else:
                try:
                    names = list_dir(mount.host_path) or []
                except OSError:
                    names = []
                candidates = [
                    (posixpath.join(mount.host_path, name), posixpath.join(mount.target, name), name) for name in sorted(names) if name in KNOWN_CONFIGS + EDGE_CONFIGS
                ]
            for path, container_path, name in candidates:
                text = loader.text(path, fatal=False, what=name, kind="conf")
                if text is None:
                    continue
                _add_config(deployment, name, display(path), service_name, container_path, text, mount.location)


def _add_config(deployment: Deployment, name: str, shown: str, service: str, target: str, text: str, mount: Location) -> None:
    if name in EDGE_CONFIGS:
        deployment.edge_configs.append(MountedText(name, shown, service, target, text, mount))
        return
    dialect: Dialect = "keyfile" if name == "rtpengine.conf" else "asterisk"
    deployment.texts.setdefault(shown, text)
    deployment.file_kinds.setdefault(shown, "conf")
    deployment.configs.append(MountedConfig(name, shown, service, target, parse_conf(text, dialect=dialect), text, mount))


DIRECTIVE_MARKER = "omnigen:"
_DIRECTIVE = re.compile(
    r"omnigen:\s*(?P<kind>disable-next-line|disable-file|disable)\s*(?:=|\s)\s*"
    r"(?P<rules>[A-Za-z0-9_-]+(?:\s*,\s*[A-Za-z0-9_-]+)*)(?:\s*(?:--|—)\s*(?P<reason>.*))?"
)


def _collect_directives(deployment: Deployment, service_lines: dict[tuple[str, int], str]) -> None:
    for shown, text in deployment.texts.items():
        if DIRECTIVE_MARKER not in text:
            continue
        lines = text.split("\n")
        found: list[tuple[int, str, bool]]
        file_kind = deployment.file_kinds.get(shown, "compose")
        if file_kind == "env":
            try:
                entries = dotenv.parse(text)
            except dotenv.DotenvError:
                entries = []
            found = [(line, body, lines[line - 1].lstrip().startswith("#")) for line, body in dotenv.comment_lines(text, entries)]
        elif file_kind == "conf" and posixpath.basename(shown) in EDGE_CONFIGS:
            # nginx and Kamailio comment with `#`, on their own line or after a statement.
            found = [(line, body, own) for line, body, own in _hash_comments(lines)]
        elif file_kind == "conf":
            # Asterisk comments with `;`; rtpengine (a GLib key file) only with whole `#` lines.
            conf_comments = parse_conf(text, dialect="keyfile" if shown.endswith("rtpengine.conf") else "asterisk").comments
            found = [(line, body, lines[line - 1].lstrip().startswith((";", "#"))) for line, body in conf_comments]
        else:
            found = [(comment.line, comment.text, comment.own_line) for comment in yamlpos.comments(text, DIRECTIVE_MARKER)]
        for line, body, own_line in found:
            match = _DIRECTIVE.search(body)
            if not match:
                if DIRECTIVE_MARKER in body:
                    deployment.problems.append(
                        LoadProblem(Location(shown, line), f"unreadable omnigen directive {body!r}; write `omnigen: disable=RULE[,RULE] -- reason`", "warning")
                    )
                continue
            rules = tuple(rule.strip() for rule in match.group("rules").split(","))
            reason = (match.group("reason") or "").strip()
            kind = match.group("kind")
            target = line
            if kind == "disable-next-line" or (kind == "disable" and own_line):
                target = _next_content_line(lines, line)
            service = service_lines.get((shown, target))
            scope: Literal["line", "next-line", "service", "file"]
            if kind == "disable-file":
                scope = "file"
            elif service is not None:
                scope = "service"
            else:
                scope = "next-line" if target != line else "line"
            deployment.directives.append(Directive(Location(shown, line), scope, rules, reason, target, service))


def _next_content_line(lines: list[str], line: int) -> int:
    for number in range(line + 1, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith(("#", ";")):
            return number
    return line


def _hash_comments(lines: list[str]) -> Iterator[tuple[int, str, bool]]:
    """`#` comments of nginx/Kamailio-style files: (line, text, on a line of its own)."""
    for number, line in enumerate(lines, start=1):
        match = re.search(r"(^|\s)#", line)
        if match:
            yield number, line[match.end() :].strip(), not line[: match.start()].strip()


def deployment_from_memory(files: dict[str, str], compose_file: str = "docker-compose.yml") -> Deployment:
    """The deployment the rendered files make, read the way `omnigen lint` reads one on disk."""

    def read(path: str) -> str | None:
        return files.get(posixpath.normpath(path))

    def list_dir(path: str) -> list[str] | None:
        prefix = posixpath.normpath(path) + "/"
        names = sorted({name[len(prefix) :].split("/", 1)[0] for name in files if name.startswith(prefix)})
        return names or None

    return load_deployment(compose_file, read, list_dir)

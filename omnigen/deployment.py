"""A deployment as the rules see it: the compose file parsed with positions and
interpolated from its .env, plus the Asterisk/rtpengine configs it mounts.

The same loader serves `omnigen build` (files still in memory) and
`omnigen lint` (files on disk): only the `read` callback differs.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omnigen.formats import dotenv, yamlpos
from omnigen.formats.asteriskconf import ConfFile, parse_conf
from omnigen.formats.interpolate import interpolate

# Asterisk reads /etc/asterisk/<name>.conf; anything else is read only if #included.
ASTERISK_CONFIG_DIR = "/etc/asterisk"
KNOWN_CONFIGS = ("rtp.conf", "pjsip.conf", "rtpengine.conf")

Reader = Callable[[str], str | None]
Lister = Callable[[str], list[str] | None]


@dataclass
class MountedConfig:
    name: str  # rtp.conf, pjsip.conf, rtpengine.conf
    path: str  # as shown to users
    service: str
    target: str  # path inside the container
    conf: ConfFile
    text: str


@dataclass
class LoadProblem:
    path: str
    line: int | None
    message: str


@dataclass
class Deployment:
    compose_path: str
    compose: yamlpos.Located
    env_path: str | None
    env: dict[str, str]
    env_lines: dict[str, int]
    env_quoted: dict[str, str]
    unresolved: list[tuple[str, int | None, str]] = field(default_factory=list)
    configs: list[MountedConfig] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        data = self.compose.data if isinstance(self.compose.data, dict) else {}
        services = data.get("services")
        if not isinstance(services, dict):
            return {}
        return {str(name): svc if isinstance(svc, dict) else {} for name, svc in services.items()}

    def line(self, *path: str | int) -> int | None:
        return self.compose.line(tuple(path))

    def config(self, name: str) -> MountedConfig | None:
        for config in self.configs:
            if config.name == name:
                return config
        return None


def _interpolate_tree(
    node: Any, env: dict[str, str], path: tuple[str | int, ...], located: yamlpos.Located, unresolved: list[tuple[str, int | None, str]]
) -> Any:
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env, (*path, key), located, unresolved) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(value, env, (*path, index), located, unresolved) for index, value in enumerate(node)]
    if isinstance(node, str) and "$" in node:
        result = interpolate(node, env)
        for name in result.missing:
            unresolved.append((name, located.line(path), ".".join(str(part) for part in path)))
        return result.value
    return node


def _bind_sources(service: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(host source, container target, index) for each bind mount, short or long syntax."""
    mounts: list[tuple[str, str, int]] = []
    volumes = service.get("volumes")
    if not isinstance(volumes, list):
        return mounts
    for index, volume in enumerate(volumes):
        if isinstance(volume, str):
            parts = volume.split(":")
            if len(parts) >= 2 and (parts[0].startswith((".", "/", "~"))):
                mounts.append((parts[0], parts[1], index))
        elif isinstance(volume, dict) and volume.get("type", "bind") == "bind":
            source, target = volume.get("source"), volume.get("target")
            if isinstance(source, str) and isinstance(target, str):
                mounts.append((source, target, index))
    return mounts


def load_deployment(
    compose_path: str,
    read: Reader,
    list_dir: Lister,
    *,
    env_path: str | None = None,
    display: Callable[[str], str] = lambda path: path,
) -> Deployment:
    """Load a deployment. Paths are POSIX paths that `read`/`list_dir` understand."""
    compose_text = read(compose_path)
    problems: list[LoadProblem] = []
    texts: dict[str, str] = {}
    if compose_text is None:
        problems.append(LoadProblem(display(compose_path), None, "compose file not found"))
        compose_text = ""
    texts[display(compose_path)] = compose_text
    try:
        raw = yamlpos.load(compose_text)
    except yamlpos.YamlError as exc:
        problems.append(LoadProblem(display(compose_path), exc.line, f"invalid YAML: {exc}"))
        raw = yamlpos.Located({})

    compose_dir = posixpath.dirname(compose_path)
    env_path = env_path or posixpath.join(compose_dir, ".env")
    env_text = read(env_path)
    env: dict[str, str] = {}
    env_lines: dict[str, int] = {}
    env_quoted: dict[str, str] = {}
    shown_env: str | None = None
    if env_text is not None:
        shown_env = display(env_path)
        texts[shown_env] = env_text
        try:
            entries = dotenv.parse(env_text)
        except dotenv.DotenvError as exc:
            problems.append(LoadProblem(shown_env, None, str(exc)))
            entries = []
        for entry in entries:
            value = entry.value
            if entry.quoted != "'":
                # .env values may reference earlier ones, as Compose resolves them.
                value = interpolate(entry.raw if entry.quoted == "" else value, env).value if "$" in entry.raw else value
            env[entry.key] = value
            env_lines[entry.key] = entry.line
            env_quoted[entry.key] = entry.quoted

    unresolved: list[tuple[str, int | None, str]] = []
    data = _interpolate_tree(raw.data, env, (), raw, unresolved)
    located = yamlpos.Located(data, raw.lines)
    deployment = Deployment(
        compose_path=display(compose_path),
        compose=located,
        env_path=shown_env,
        env=env,
        env_lines=env_lines,
        env_quoted=env_quoted,
        unresolved=unresolved,
        problems=problems,
        texts=texts,
    )
    _collect_configs(deployment, compose_dir, read, list_dir, display)
    return deployment


def _collect_configs(deployment: Deployment, compose_dir: str, read: Reader, list_dir: Lister, display: Callable[[str], str]) -> None:
    for service_name, service in deployment.services.items():
        for source, target, _index in _bind_sources(service):
            host = posixpath.normpath(posixpath.join(compose_dir, source))
            base = posixpath.basename(host)
            if base in KNOWN_CONFIGS:
                candidates = [(host, target, base)]
            else:
                names = list_dir(host) or []
                candidates = [
                    (posixpath.join(host, name), posixpath.join(target, name), name) for name in sorted(names) if name in KNOWN_CONFIGS
                ]
            for path, container_path, name in candidates:
                text = read(path)
                if text is None:
                    continue
                shown = display(path)
                deployment.texts[shown] = text
                separator = "=" if name != "rtpengine.conf" else "="
                deployment.configs.append(
                    MountedConfig(name, shown, service_name, container_path, parse_conf(text, separator=separator), text)
                )

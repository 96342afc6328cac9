from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "write the profile (and secrets sidecar) that reproduces an existing hand-written deployment"
EPILOG = """DIR is a deployment folder (its compose file may sit in a subfolder such as
prod-env/) or the compose file itself; its .env and the Asterisk configs it
mounts are read too. The report says what was kept, what changed and why:
forbidden settings dropped, internal services closed, the RTP range sized to
the calls it really carries, placeholder passwords replaced by generated ones.
The running stack's named volumes are adopted by their real names (nothing is
copied), and the report says which database users need the new password
(docs/migrating.md walks a live site through it).

examples:
  omnigen import ../omnivoip-v2                              writes omnivoip.toml + omnivoip.secrets.toml
  omnigen import ../omnivoip-v2 -o site.toml --public-ip 203.0.113.10
  omnigen import prod-env/docker-compose.yml --bind-ip 192.168.1.10 --calls 40
  omnigen import ../omnivoip-v2 && omnigen build omnivoip.toml
  omnigen import /srv/omnivoip-v2 --compose-project omnivoip   a stack started with `docker compose -p omnivoip`

exit codes: 0 written, 2 unreadable deployment, missing facts (pass the option
the message names) or an existing profile/sidecar without --force.
"""

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, metavar="DIR", help="deployment folder or compose file")
    parser.add_argument("-o", "--output", type=Path, default=Path("omnivoip.toml"), help="profile to write (default: omnivoip.toml); the sidecar goes beside it")
    parser.add_argument("--name", help="project.name, when the deployment's PROJECT_NAME or compose name is not the one you want")
    parser.add_argument("--public-ip", metavar="ADDRESS", help="address phones reach behind NAT (network.public_ip)")
    parser.add_argument("--bind-ip", metavar="ADDRESS", help="host address to publish SIP, RTP and the web UI on (network.bind_ip)")
    parser.add_argument("--host-kind", metavar="KIND", help="host.kind (default: vps; `omnigen doctor` tells)")
    parser.add_argument("--calls", type=int, metavar="N", help="concurrent calls to plan for, instead of what the published RTP range carries")
    parser.add_argument(
        "--compose-project",
        metavar="NAME",
        help="the Compose project the running stack was started as (-p or COMPOSE_PROJECT_NAME in the shell); default: what Compose picks from the files",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing profile and secrets sidecar, keeping a .bak of each")


def compose_files(source: Path) -> list[str]:
    """The compose files Compose would read for this deployment (as `omnigen lint` picks them),
    in the folder given or, for the v2 layout, in the one subfolder that has them (prod-env/)."""
    from omnigen.errors import DeploymentInputError, UsageError
    from omnigen.tools.lint import deployments_below, find_target

    try:
        return list(find_target(str(source)).files)
    except DeploymentInputError:
        if not source.is_dir():
            raise
    below = deployments_below(str(source.absolute()))
    if len(below) != 1:
        found = f"several deployments ({', '.join(below)})" if below else "no compose file here or one folder down"
        raise UsageError(f"{source}: {found}; give the deployment folder or compose file to import")
    return list(find_target(str(source / below[0])).files)


def run(args: argparse.Namespace) -> int:
    import os

    from omnigen.errors import UsageError
    from omnigen.inputs.profile import secrets_path_for
    from omnigen.tools.importing import ImportOptions, import_deployment, render_report
    from omnigen.tools.lint import list_dir, read_text
    from omnigen.verify.deployment import load_deployment
    from omnigen.write.outputs import keep_backup, write_file_atomic

    files = compose_files(args.source)
    root = args.source if args.source.is_dir() else args.source.parent
    profile_path: Path = args.output
    secrets_path = secrets_path_for(profile_path)
    existing = [path for path in (profile_path, secrets_path) if path.exists()]
    if existing and not args.force:
        raise UsageError(
            f"{', '.join(map(str, existing))}: already exist; import never overwrites a profile or its secrets; "
            "choose another -o, or pass --force"
        )

    def shown(path: str) -> str:
        """Paths in the report and the profile's comments, relative to the deployment folder given."""
        return os.path.relpath(path, os.path.abspath(root))

    deployment = load_deployment(files, read_text, list_dir, display=shown)
    imported = import_deployment(
        deployment,
        ImportOptions(name=args.name, public_ip=args.public_ip, bind_ip=args.bind_ip, host_kind=args.host_kind, calls=args.calls, compose_project=args.compose_project),
        origin=str(args.source),
        fallback_name=root.resolve().name,
        secrets_name=secrets_path.name,
        compose_folder=Path(files[0]).resolve().parent.name,
    )
    # --force replaces them, but never loses them: the old sidecar may hold the only copy of live passwords.
    backups = [keep_backup(secrets_path, imported.secrets_text, 0o600), keep_backup(profile_path, imported.profile_text, 0o644)]
    # The sidecar first: a profile without its secrets would get new ones on the first build.
    write_file_atomic(secrets_path, imported.secrets_text, 0o600)
    write_file_atomic(profile_path, imported.profile_text, 0o644)
    sys.stdout.write(render_report(imported, profile_path=str(profile_path), secrets_path=str(secrets_path)))
    for original, backup in zip((secrets_path, profile_path), backups, strict=True):
        if backup is not None:
            sys.stdout.write(f"kept the previous {original} as {backup}\n")
    return 0

"""Profile format migrations: schema_version N -> N+1, applied to the TOML text in place.

Each release that changes the profile format bumps `profile.SCHEMA_VERSION` and
registers one migration from the previous version here. `omnigen migrate` chains
them until the profile reads as the current version. Migrations edit a tomlkit
document, so comments, key order, blank lines and the user's own formatting
survive; keys are renamed where they stand, and a removed key is left behind as a
comment saying why, so nothing the user wrote disappears silently.

Schema 0 is the pre-release format (omnigen 0.0.x), documented in docs/releases.md:
no `schema_version` key (or `schema_version = 0`), `[capacity] calls` and
`headroom`, and an explicit `[rtp] port_min`/`port_max` range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import ParseError
from tomlkit.items import Comment, InlineTable, Item, Table, Trivia

from omnigen.errors import InputIssue, ProfileError
from omnigen.inputs.profile import SCHEMA_VERSION
from omnigen.inputs.tomlpos import key_lines, parse_toml

# The version a profile without any schema_version key is read as.
UNVERSIONED = 0


@dataclass(frozen=True)
class Change:
    """One edit a migration made, for the report: the key as it reads now, and why."""

    key: str
    message: str


Upgrade = Callable[["MigrationContext"], list[Change]]


@dataclass(frozen=True)
class Migration:
    source: int
    summary: str
    upgrade: Upgrade

    @property
    def target(self) -> int:
        return self.source + 1


MIGRATIONS: dict[int, Migration] = {}


def migration(source: int, summary: str) -> Callable[[Upgrade], Upgrade]:
    """Register the migration that reads schema `source` and writes `source + 1`."""

    def register(upgrade: Upgrade) -> Upgrade:
        assert source not in MIGRATIONS, f"two migrations from schema {source}"
        MIGRATIONS[source] = Migration(source, summary, upgrade)
        return upgrade

    return register


@dataclass(frozen=True)
class MigrationContext:
    """The document being migrated, plus where it came from for error messages."""

    document: tomlkit.TOMLDocument
    file: str
    text: str

    def error(self, key: str, message: str, hint: str) -> ProfileError:
        path = tuple(key.split("."))
        lines = key_lines(self.text)
        line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
        return ProfileError([InputIssue(self.file, key, message, line=line, hint=hint)])

    def tables(self, name: str) -> Iterator[Container]:
        """Every container holding keys of top-level table `name`: a `[name]` table, an
        inline table, or the dotted keys `name.x = ...` (tomlkit keeps each as its own part)."""
        for key, item in self.document.body:
            if key is not None and key.key == name and isinstance(item, Table | InlineTable):
                yield item.value

    def get(self, table: str, key: str) -> Item | None:
        for container in self.tables(table):
            if key in container:
                return _plain_item(container, key)
        return None

    def rename(self, table: str, old: str, new: str, why: str) -> Change | None:
        """Rename `table.old` to `table.new` where it stands, keeping its value and comment."""
        for container in self.tables(table):
            if old not in container:
                continue
            if self.get(table, new) is not None:
                raise self.error(
                    f"{table}.{old}",
                    f"both {table}.{old} (schema {self._source}) and {table}.{new} are set",
                    f"keep one: {table}.{new} is the current name",
                )
            container._replace(old, new, _plain_item(container, old))
            return Change(f"{table}.{new}", f"renamed from {table}.{old}: {why}")
        return None

    def retire(self, table: str, key: str, why: str) -> Change | None:
        """Remove `table.key`, leaving it commented out in place (inline tables cannot hold comments)."""
        for container in self.tables(table):
            if key not in container:
                continue
            item = _plain_item(container, key)
            index = container._map[tomlkit.key(key)]
            owner = self._owner(container)
            if isinstance(index, int) and isinstance(owner, Table):
                trivia = item.trivia
                own_comment = f"  {trivia.comment}" if trivia.comment else ""
                shown = f"{table}.{key}" if owner.is_super_table() else key  # dotted keys spell out their table
                note = f"# {shown} = {item.as_string()}{own_comment}  <- removed by omnigen migrate: {why}"
                # Same slot, so every other key keeps its index in the container's map.
                container.body[index] = (None, Comment(Trivia(indent=trivia.indent, comment_ws="", comment=note, trail=trivia.trail)))
                del container._map[tomlkit.key(key)]
            else:
                del container[key]
            return Change(f"{table}.{key}", f"removed: {why}")
        return None

    def set_version(self, version: int) -> None:
        document = self.document
        if "schema_version" in document:
            document["schema_version"] = version  # tomlkit keeps the line's comment
            return
        # Right after the leading comments (#:schema, the profile's description), before any key or table.
        index = next((n for n, (key, item) in enumerate(document.body) if key is not None or not isinstance(item, Comment)), len(document.body))
        document._insert_at(index, "schema_version", version)

    @property
    def _source(self) -> int:
        return document_version(self)

    def _owner(self, container: Container) -> Item | None:
        for _key, item in self.document.body:
            if isinstance(item, Table | InlineTable) and item.value is container:
                return item
        return None


def _plain_item(container: Container, key: str) -> Item:
    """A key's item; profile keys are scalars, never the split tables tomlkit proxies."""
    item = container.item(key)
    if not isinstance(item, Item):
        raise ProfileError([InputIssue("", key, "is defined in several places", hint="define each table once")])
    return item


def document_version(context: MigrationContext) -> int:
    """The schema a document is written in; no key at all means the pre-release schema 0."""
    if "schema_version" not in context.document:
        return UNVERSIONED
    value = context.document["schema_version"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise context.error(
            "schema_version",
            f"schema_version must be a whole number (got {value!r})",
            f"this omnigen reads versions 0 to {SCHEMA_VERSION}",
        )
    return int(value)


@dataclass(frozen=True)
class MigrationResult:
    text: str
    source: int
    target: int
    changes: tuple[tuple[Migration, tuple[Change, ...]], ...]

    @property
    def needed(self) -> bool:
        return self.source != self.target


def migrate_text(text: str, file: str) -> MigrationResult:
    """Upgrade a profile's text to the current schema; the text is unchanged when it already is."""
    parse_toml(text, file)  # the same located syntax errors as a build; tomlkit's are vaguer
    try:
        document = tomlkit.parse(text)
    except ParseError as exc:
        raise ProfileError(
            [InputIssue(file, "", f"malformed TOML: {exc}", line=getattr(exc, "line", None), hint="fix the TOML syntax")]
        ) from None
    context = MigrationContext(document, file, text)
    source = document_version(context)
    if source > SCHEMA_VERSION:
        raise context.error(
            "schema_version",
            f"this profile is for a newer omnigen (schema_version {source}; this one knows versions up to {SCHEMA_VERSION})",
            "upgrade omnigen; migrations only go forward",
        )
    applied: list[tuple[Migration, tuple[Change, ...]]] = []
    version = source
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        assert step is not None, f"no migration registered from schema {version}"
        changes = step.upgrade(context)
        context.set_version(step.target)
        applied.append((step, (*changes, Change("schema_version", f"{version} -> {step.target}"))))
        version = step.target
    return MigrationResult(tomlkit.dumps(document) if applied else text, source, version, tuple(applied))


# ---------------------------------------------------------------------------
# The migrations, oldest first. Each one gets a test: tests/migrations/<N>-to-<N+1>/.


def _integer(item: Item | None) -> int | None:
    value = item.unwrap() if item is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@migration(0, "pre-release -> 0.1.0: capacity.calls -> concurrent_calls, capacity.headroom -> headroom_percent, rtp.port_min -> start; rtp.port_max derived")
def _schema_0_to_1(context: MigrationContext) -> list[Change]:
    changes: list[Change] = []
    port_max = _integer(context.get("rtp", "port_max"))
    renames = (
        ("capacity", "calls", "concurrent_calls", "the number is bridged calls at once, each costing 4 RTP ports"),
        ("capacity", "headroom", "headroom_percent", "the unit is now in the name"),
        ("rtp", "port_min", "start", "the range now starts here and its end follows from capacity"),
    )
    for table, old, new, why in renames:
        if change := context.rename(table, old, new, why):
            changes.append(change)
    if context.get("rtp", "port_max") is not None:
        start = _integer(context.get("rtp", "start"))
        why = "the end of the RTP range follows from capacity, so compose, rtp.conf and .env always agree"
        if start is not None and port_max is not None:
            why += f"; port_max gave {start}-{port_max} ({port_max - start + 1} ports): raise capacity.concurrent_calls if you need them all"
        if change := context.retire("rtp", "port_max", why):
            changes.append(change)
    return changes


@migration(1, "0.1 -> 0.2: the services the application does not have are gone: images.gearman, database.dialer_name, database.dialer_user, volumes.dialer_postgres_data")
def _schema_1_to_2(context: MigrationContext) -> list[Change]:
    changes: list[Change] = []
    retired = (
        ("images", "gearman", "no OmniVoIP component uses Gearman (docs/application.md), so the gearman service is no longer deployed"),
        ("database", "dialer_name", "no dialer component opens a database (docs/application.md), so dialer-postgresql is no longer deployed"),
        ("database", "dialer_user", "no dialer component opens a database (docs/application.md), so dialer-postgresql is no longer deployed"),
        ("volumes", "dialer_postgres_data", "no dialer component opens a database (docs/application.md): the volume is no longer mounted (it is left as it is)"),
    )
    for table, key, why in retired:
        if change := context.retire(table, key, why):
            changes.append(change)
    return changes

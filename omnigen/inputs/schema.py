"""The profile's JSON Schema, from the pydantic model: every field's description,
default, enum and range. Editors (Taplo / Even Better TOML) use it through the
`#:schema` directive at the top of each profile."""

from __future__ import annotations

import json
from typing import Any

SCHEMA_ID = "https://omnigen.dev/schema/omnivoip.schema.json"


def profile_schema() -> dict[str, Any]:
    from omnigen.inputs.profile import Profile

    schema = Profile.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(profile_schema(), indent=2, ensure_ascii=False) + "\n"

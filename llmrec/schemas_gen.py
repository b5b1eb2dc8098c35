"""JSON Schema files of the event contract, generated from the pydantic models in `events`.

`python -m llmrec.schemas_gen` rewrites `llmrec/schemas/*.json`; a unit test fails when the
files and the models disagree, so the published contract cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from llmrec.events import Event, ForgetUser, ItemRecord, Recommendation

__all__ = ["SCHEMA_DIR", "dead_letter_schema", "render_schemas", "write_schemas"]

SCHEMA_DIR = Path(__file__).with_name("schemas")
_BASE = "https://llmrec.dev/schemas/"


def dead_letter_schema() -> dict[str, Any]:
    """The `*.dlq` record: original bytes, reason and source coordinates.

    A value (or key) too large for the document keeps only its head; `*_truncated`, `*_size`
    and `*_sha256` then say so and identify the original (see `workers/dlq.py`).
    """
    text = {"type": ["string", "null"]}
    encoding = {"enum": ["utf-8", "base64", "null"]}

    def summary(name: str) -> dict[str, Any]:
        return {
            f"{name}_truncated": {
                "const": True,
                "description": f"Present when {name} holds only the first 1,024 bytes.",
            },
            f"{name}_size": {"type": "integer", "description": f"Bytes of the original {name}."},
            f"{name}_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        }

    return {
        "title": "DeadLetter",
        "type": "object",
        "required": ["error", "kind", "source", "value", "value_encoding", "failed_at"],
        "properties": {
            "error": {
                "type": "string",
                "maxLength": 4000,
                "description": "Why the record was rejected.",
            },
            "kind": {"enum": ["invalid", "unknown_item", "processing_error"]},
            "source": {
                "type": "object",
                "required": ["topic", "partition", "offset"],
                "properties": {
                    "topic": {"type": "string"},
                    "partition": {"type": "integer"},
                    "offset": {"type": "integer"},
                },
            },
            "key": text,
            "key_encoding": encoding,
            "value": {**text, "description": "The original bytes: utf-8 text or base64."},
            "value_encoding": encoding,
            **summary("key"),
            **summary("value"),
            "failed_at": {"type": "number"},
        },
    }


def render_schemas() -> dict[str, str]:
    """File name -> JSON text of every contract schema."""
    docs: dict[str, dict[str, Any]] = {
        "item.json": ItemRecord.model_json_schema(),
        "event.json": Event.model_json_schema(),
        "forget_user.json": ForgetUser.model_json_schema(),
        "recommendation.json": Recommendation.model_json_schema(),
        "dead_letter.json": dead_letter_schema(),
    }
    out = {}
    for name, doc in docs.items():
        full = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": _BASE + name}
        out[name] = json.dumps({**full, **doc}, indent=2, sort_keys=True) + "\n"
    return out


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_schemas():
        sys.stderr.write(f"wrote {p}\n")

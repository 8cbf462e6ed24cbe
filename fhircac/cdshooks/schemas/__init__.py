"""JSON Schemas of CDS Hooks request bodies, compiled once; problems come back as readable lines."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

HOOKS = ("patient-view", "order-select", "order-sign")
MAX_PROBLEMS = 10


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files(__package__).joinpath(name).read_text("utf-8"))
    return data


@cache
def _request_validator(hook: str) -> Draft202012Validator:
    schema = copy.deepcopy(_load("request.schema.json"))
    schema["properties"]["context"] = {"$ref": f"#/$defs/{hook}"}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def _feedback_validator() -> Draft202012Validator:
    schema = _load("feedback.schema.json")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _problems(validator: Draft202012Validator, body: Any) -> list[str]:
    errors = sorted(validator.iter_errors(body), key=lambda e: (list(e.absolute_path), e.message))
    lines = []
    for error in errors[:MAX_PROBLEMS]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        lines.append(f"(body){where}: {message}")
    return lines


def request_problems(hook: str, body: Any) -> list[str]:
    """Why ``body`` is not a valid call of a ``hook`` service; empty when it is."""
    return _problems(_request_validator(hook), body)


def feedback_problems(body: Any) -> list[str]:
    return _problems(_feedback_validator(), body)

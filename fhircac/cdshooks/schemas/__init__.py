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
        message = _readable(error)
        message = message if len(message) <= 200 else message[:200] + "…"
        lines.append(f"(body){where}: {message}")
    return lines


def _readable(error: Any) -> str:
    """jsonschema's message, without a dump of the whole instance where it would print one."""
    instance = error.instance
    if error.validator == "not" and isinstance(error.validator_value, dict):
        fields = " and ".join(error.validator_value.get("required", [])) or "this"
        outcome = instance.get("outcome") if isinstance(instance, dict) else None
        return f"{fields} is not allowed" + (f" with outcome {outcome!r}" if outcome else "")
    if error.validator == "anyOf" and isinstance(instance, dict):
        options = [" and ".join(o.get("required", [])) for o in error.validator_value if "required" in o]
        if all(options):
            return "give " + ", or ".join(options)
    text = repr(instance)
    if isinstance(instance, dict | list) and len(text) > 60 and str(error.message).startswith(text[:30]):
        return str(error.message).replace(text, "the value", 1)
    return str(error.message)


def request_problems(hook: str, body: Any) -> list[str]:
    """Why ``body`` is not a valid call of a ``hook`` service; empty when it is."""
    return _problems(_request_validator(hook), body)


def feedback_problems(body: Any) -> list[str]:
    return _problems(_feedback_validator(), body)

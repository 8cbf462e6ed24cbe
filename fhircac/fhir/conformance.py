"""A small checker for fhircac's own differential profiles (profiles/*.json); no network.

Not a FHIR validator: it checks what fhircac's differentials say, on resources as JSON dicts:
cardinality (counted in every occurrence of the parent element), fixed and pattern values, slices
(extensions by url, other elements by a pattern discriminator), allowed types of choice elements,
Reference targets, and required bindings to fhircac ValueSets (explicit concepts only; codes of a
system included by filter are accepted). fhircac extensions are checked wherever they occur, against
their own StructureDefinitions, whether or not the resource claims a profile.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fhircac.fhir import codes

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
_OWN_DEFINITIONS = f"{codes.CANONICAL}/StructureDefinition/"


class _ValueSet:
    def __init__(self, resource: dict[str, Any]) -> None:
        includes = resource.get("compose", {}).get("include", [])
        self.name: str = resource["id"]
        self.concepts = {(inc["system"], c["code"]) for inc in includes for c in inc.get("concept", [])}
        self.filtered_systems = {inc["system"] for inc in includes if inc.get("filter")}

    def contains(self, value: Any) -> bool:
        """A code, a Coding, or a CodeableConcept with at least one coding in the value set."""
        if isinstance(value, str):
            return any(code == value for _, code in self.concepts)
        if not isinstance(value, dict):
            return False
        if "coding" in value:
            return any(self.contains(coding) for coding in value["coding"])
        system = value.get("system")
        return (system, value.get("code")) in self.concepts or system in self.filtered_systems


@cache
def _load() -> tuple[dict[str, dict[str, Any]], dict[str, _ValueSet]]:
    definitions: dict[str, dict[str, Any]] = {}
    value_sets: dict[str, _ValueSet] = {}
    for path in sorted(PROFILES_DIR.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if resource.get("resourceType") == "StructureDefinition":
            definitions[resource["url"]] = resource
        elif resource.get("resourceType") == "ValueSet":
            value_sets[resource["url"]] = _ValueSet(resource)
    return definitions, value_sets


def check(resource: dict[str, Any]) -> list[str]:
    """Violations of the profiles in meta.profile and of fhircac extensions; [] when it conforms."""
    definitions, value_sets = _load()
    problems: list[str] = []
    for url in resource.get("meta", {}).get("profile", []):
        definition = definitions.get(url.split("|")[0])
        if definition is None:
            problems.append(f"meta.profile: {url} is not a profile in {PROFILES_DIR}")
        elif definition["type"] != resource.get("resourceType"):
            problems.append(
                f"meta.profile: {url} profiles {definition['type']}, not {resource.get('resourceType')}"
            )
        else:
            problems += _Differential(definition, value_sets).check(resource)
    for extension in _extensions(resource):
        url = extension.get("url", "")
        definition = definitions.get(url)
        if definition is not None and definition["type"] == "Extension":
            name = definition["id"]
            problems += [
                f"{name} extension: {p}" for p in _Differential(definition, value_sets).check(extension)
            ]
        elif url.startswith(_OWN_DEFINITIONS):
            problems.append(f"extension {url}: not a fhircac extension")
    return list(dict.fromkeys(problems))


def _extensions(node: Any) -> list[dict[str, Any]]:
    """Every extension (and modifierExtension) anywhere in ``node``."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key in ("extension", "modifierExtension"):
            found += [ext for ext in node.get(key, []) if isinstance(ext, dict)]
        for value in node.values():
            found += _extensions(value)
    elif isinstance(node, list):
        for item in node:
            found += _extensions(item)
    return found


def _choice_keys(node: dict[str, Any], name: str) -> list[str]:
    """The keys of ``node`` that a choice element (``value[x]``) matches: valueQuantity, valueString, …"""
    prefix = name[:-3]
    return [k for k in node if k.startswith(prefix) and len(k) > len(prefix) and k[len(prefix)].isupper()]


def _children(node: Any, name: str) -> list[Any]:
    if not isinstance(node, dict):
        return []
    keys = _choice_keys(node, name) if name.endswith("[x]") else [name] if name in node else []
    return [item for key in keys for item in (node[key] if isinstance(node[key], list) else [node[key]])]


def _matches(pattern: Any, value: Any) -> bool:
    """FHIR pattern matching: objects on the pattern's keys; each pattern list item matches some item."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and _matches(v, value[k]) for k, v in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(_matches(p, v) for v in value) for p in pattern)
    return bool(pattern == value)


def _reference_type(reference: str) -> str | None:
    """The resource type a reference names; None when it cannot say (urn:uuid:, contained)."""
    if reference.startswith(("urn:uuid:", "#")):
        return None
    if "?" in reference:  # conditional reference: Type?search
        return reference.split("?", 1)[0].rsplit("/", 1)[-1]
    parts = reference.split("/_history/")[0].split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Differential:
    def __init__(self, definition: dict[str, Any], value_sets: dict[str, _ValueSet]) -> None:
        self.elements: dict[str, dict[str, Any]] = {e["id"]: e for e in definition["differential"]["element"]}
        self.value_sets = value_sets

    def check(self, root: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        for element_id, element in self.elements.items():
            if "." not in element_id:
                continue
            parents = self._select(root, element_id.rsplit(".", 1)[0])
            for parent in parents:
                problems += self._check_occurrences(element_id, element, parent)
            nodes = [node for parent in parents for node in self._step(parent, element_id)]
            for node in nodes:
                problems += self._check_value(element_id, element, node)
        return problems

    def _select(self, root: Any, element_id: str) -> list[Any]:
        """Every node of ``root`` that ``element_id`` (e.g. ``CarePlan.activity.detail``) designates."""
        parts = element_id.split(".")
        nodes = [root]
        for i in range(1, len(parts)):
            nodes = [child for node in nodes for child in self._step(node, ".".join(parts[: i + 1]))]
        return nodes

    def _step(self, node: Any, element_id: str) -> list[Any]:
        """The children of ``node`` named by the last part of ``element_id``, narrowed to its slice."""
        name, _, slice_name = element_id.rsplit(".", 1)[-1].partition(":")
        children = _children(node, name)
        return [c for c in children if self._in_slice(c, element_id)] if slice_name else children

    def _in_slice(self, item: Any, slice_id: str) -> bool:
        element = self.elements[slice_id]
        profiles = [p for t in element.get("type", []) for p in t.get("profile", [])]
        url = profiles[0] if profiles else self.elements.get(f"{slice_id}.url", {}).get("fixedUri")
        if url is not None:  # an extension slice: by url
            return isinstance(item, dict) and item.get("url") == url
        slicing = self.elements.get(slice_id.rpartition(":")[0], {}).get("slicing", {})
        for discriminator in slicing.get("discriminator", []):
            path = discriminator["path"]
            target = self.elements.get(slice_id if path == "$this" else f"{slice_id}.{path}", {})
            pattern = next((v for k, v in target.items() if k.startswith(("pattern", "fixed"))), None)
            values = [item] if path == "$this" else _children(item, path)
            if pattern is None or not any(_matches(pattern, value) for value in values):
                return False
        return True

    def _check_occurrences(self, element_id: str, element: dict[str, Any], parent: Any) -> list[str]:
        problems: list[str] = []
        count = len(self._step(parent, element_id))
        if count < element.get("min", 0):
            problems.append(f"{element_id}: {count} found, at least {element['min']} required")
        maximum = element.get("max", "*")
        if maximum != "*" and count > int(maximum):
            problems.append(f"{element_id}: {count} found, at most {maximum} allowed")
        name = element_id.rsplit(".", 1)[-1].partition(":")[0]
        types = [t["code"] for t in element.get("type", [])]
        if name.endswith("[x]") and types and isinstance(parent, dict):
            allowed = {t[0].upper() + t[1:] for t in types}
            for key in _choice_keys(parent, name):
                if key[len(name) - 3 :] not in allowed:
                    problems.append(f"{element_id}: {key} not allowed (allowed types: {', '.join(types)})")
        return problems

    def _check_value(self, element_id: str, element: dict[str, Any], node: Any) -> list[str]:
        problems: list[str] = []
        for key, expected in element.items():
            if key.startswith("fixed") and node != expected:
                problems.append(f"{element_id}: {_short(node)} is not the fixed value {_short(expected)}")
            elif key.startswith("pattern") and not _matches(expected, node):
                problems.append(f"{element_id}: {_short(node)} does not match the pattern {_short(expected)}")
        targets = [p.rsplit("/", 1)[-1] for t in element.get("type", []) for p in t.get("targetProfile", [])]
        if targets and isinstance(node, dict):
            reference = node.get("reference")
            named = _reference_type(reference) if isinstance(reference, str) else node.get("type")
            if named is not None and named not in targets:
                shown = reference if isinstance(reference, str) else f"type {named}"
                problems.append(f"{element_id}: reference {shown!r} is not to {' or '.join(targets)}")
        binding = element.get("binding", {})
        value_set = self.value_sets.get(str(binding.get("valueSet", "")).split("|")[0])
        if binding.get("strength") == "required" and value_set is not None and not value_set.contains(node):
            problems.append(f"{element_id}: {_short(node)} is not in ValueSet {value_set.name}")
        return problems

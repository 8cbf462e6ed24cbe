"""CDS Hooks 2.0 cards, built so that a card that breaks the spec cannot be made.

The constructors enforce what the spec and its FHIRPath invariants require (summary under 140
characters, indicator values, ``selectionBehavior`` with suggestions, a ``display`` on every override
reason, ``description`` on every action, ``resourceId`` for deletes, no ``appContext`` on absolute
links) and JSON output leaves out absent fields, because CDS Hooks forbids ``null``, ``""``, ``[]``
and ``{}`` where a field is optional. Every card and suggestion has a uuid, so feedback can name it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from fhircac.fhir import codes

SUMMARY_LIMIT = 139  # the spec: a "<140-character" summary
Indicator = Literal["info", "warning", "critical"]
INDICATORS = ("info", "warning", "critical")


def shorten(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Cut at a word boundary and mark the cut: a summary must never be silently truncated mid-word."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:.")
    return cut + "…"


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str | None = None

    def to_json(self) -> dict[str, str]:
        data = {"system": self.system, "code": self.code}
        if self.display:
            data["display"] = self.display
        return data


@dataclass(frozen=True)
class Source:
    label: str
    url: str | None = None
    topic: Coding | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"label": self.label}
        if self.url:
            data["url"] = self.url
        if self.topic:
            data["topic"] = self.topic.to_json()
        return data


@dataclass(frozen=True)
class Action:
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resource_id: str | None = None  # "ServiceRequest/123", for delete

    def __post_init__(self) -> None:
        if not self.description:
            raise ValueError("every action needs a description (cds-resp-5)")
        if self.type == "delete" and (self.resource_id is None or self.resource is not None):
            raise ValueError("a delete action names its target with resourceId only (cds-resp-2)")
        if self.type in ("create", "update") and self.resource is None:
            raise ValueError(f"a {self.type} action carries the resource")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.resource is not None:
            data["resource"] = self.resource
        if self.resource_id is not None:
            data["resourceId"] = self.resource_id
        return data


@dataclass(frozen=True)
class Suggestion:
    label: str
    kind: str  # what sort of suggestion, for the feedback summary (never sent)
    actions: tuple[Action, ...]
    is_recommended: bool | None = None
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"label": self.label, "uuid": self.uuid}
        if self.is_recommended is not None:
            data["isRecommended"] = self.is_recommended
        if self.actions:
            data["actions"] = [a.to_json() for a in self.actions]
        return data


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    type: Literal["absolute", "smart"] = "absolute"
    app_context: str | None = None

    def __post_init__(self) -> None:
        if self.app_context is not None and self.type != "smart":
            raise ValueError("appContext is only for smart links (cds-resp-3)")

    def to_json(self) -> dict[str, Any]:
        data = {"label": self.label, "url": self.url, "type": self.type}
        if self.app_context:
            data["appContext"] = self.app_context
        return data


@dataclass(frozen=True)
class Card:
    kind: str  # what sort of card, for the feedback summary (never sent)
    summary: str
    indicator: Indicator
    source: Source
    detail: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    selection_behavior: Literal["at-most-one", "any"] | None = None
    override_reasons: tuple[Coding, ...] = ()
    links: tuple[Link, ...] = ()
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        if len(self.summary) > SUMMARY_LIMIT or not self.summary:
            raise ValueError(f"summary must be 1-{SUMMARY_LIMIT} characters: {self.summary!r}")
        if self.indicator not in INDICATORS:
            raise ValueError(f"indicator {self.indicator!r}")
        if self.suggestions and self.selection_behavior is None:
            raise ValueError("cards with suggestions need selectionBehavior (cds-resp-6)")
        if (
            self.selection_behavior == "at-most-one"
            and sum(bool(s.is_recommended) for s in self.suggestions) > 1
        ):
            raise ValueError("at most one recommended suggestion with at-most-one (cds-resp-1)")
        if any(not reason.display for reason in self.override_reasons):
            raise ValueError("override reasons need a display (cds-resp-4)")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "uuid": self.uuid,
            "summary": self.summary,
            "indicator": self.indicator,
            "source": self.source.to_json(),
        }
        if self.detail:
            data["detail"] = self.detail
        if self.suggestions:
            data["suggestions"] = [s.to_json() for s in self.suggestions]
            data["selectionBehavior"] = self.selection_behavior
        if self.override_reasons:
            data["overrideReasons"] = [r.to_json() for r in self.override_reasons]
        if self.links:
            data["links"] = [link.to_json() for link in self.links]
        return data


def override_reason(code: str) -> Coding:
    return Coding(codes.OVERRIDE_REASON, code, codes.OVERRIDE_REASONS[code][0])


def rule_topic(statement_id: str) -> Coding:
    """The card's topic: the fhircac rule it shows (CodeSystem fhircac-rule in profiles/)."""
    return Coding(codes.RULE, statement_id, statement_id.replace("-", " "))

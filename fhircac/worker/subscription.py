"""R4 rest-hook Subscriptions: register one on a FHIR server, and turn its notifications into write-back.

A notification feeds the same pipeline as polling (``Poller.handle_id``, same ledger), so an
Observation that arrives both ways is assessed once. HAPI sends ``PUT {endpoint}/Observation/{id}``
with the resource when the Subscription has a payload, and an empty ``POST {endpoint}`` without
one; the latter triggers a poll pass. Deliveries are at least once; the ledger and the conditional
creates make repeats harmless. Polling stays the safety net for notifications that never arrive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fhircac.fhir.client import FhirClient
from fhircac.worker.poller import CAC_CODE_PARAM, Poller, PollReport

CRITERIA = f"Observation?code={CAC_CODE_PARAM}"


@dataclass(frozen=True)
class Registration:
    id: str
    status: str
    created: bool


def subscription_resource(endpoint: str, *, payload: bool = True, token: str | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint}
    if payload:
        channel["payload"] = "application/fhir+json"
    if token:
        channel["header"] = [f"Authorization: Bearer {token}"]
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "fhircac: assess new or changed coronary artery calcium scores",
        "criteria": CRITERIA,
        "channel": channel,
    }


def register(
    client: FhirClient,
    endpoint: str,
    *,
    payload: bool = True,
    token: str | None = None,
    wait_seconds: float = 30.0,
) -> Registration:
    """Create the Subscription unless one for this endpoint exists; wait until the server activates it."""
    wanted = subscription_resource(endpoint, payload=payload, token=token)
    result = client.create(wanted, if_none_exist=urlencode({"url": endpoint}))
    resource = result.resource or {}
    if not result.created and resource.get("id") and resource.get("channel") != wanted["channel"]:
        # The same endpoint with another token or payload setting (e.g. a rotated FHIRCAC_HOOK_TOKEN):
        # update it, or the server would go on sending what the service now refuses.
        update = client.update({**wanted, "id": resource["id"]})
        resource = update.resource or {**wanted, "id": resource["id"]}
    subscription_id = str(resource.get("id") or (result.location or "").split("/_history/")[0].split("/")[-1])
    status = str(resource.get("status") or "requested")
    deadline = time.monotonic() + wait_seconds
    while status == "requested" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = str(client.read("Subscription", subscription_id).get("status"))
    return Registration(subscription_id, status, result.created)


def notify(poller: Poller, resource: dict[str, Any]) -> PollReport:
    """A notification with its Observation; one without a payload asks for a poll pass instead.

    The notification is a hint: only its id is used. The Observation is read again from the
    server, so its version (the ledger's key), subject and content are the server's; a forged or
    stale notification can make fhircac look at an Observation, never record a version it did
    not see or assess a patient the server does not name."""
    return poller.handle_id(str(resource.get("id")))

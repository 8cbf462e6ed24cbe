"""``fhircac writeback``, ``fhircac poll`` and ``fhircac subscribe``: the server-facing commands.

Exit codes: 0 ok, 2 the patient's data cannot be assessed (the reasons on stderr), 3 the FHIR
server is unreachable or refused a request, 1 internal error. Settings come from ``FHIRCAC_*``
(README); flags override them.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from types import FrameType
from urllib.parse import urlsplit

from fhircac.clinical.policies import get_policy
from fhircac.config import ConfigError, Settings
from fhircac.fhir.auth import AuthError
from fhircac.fhir.client import FhirClient, FhirError, client_from_env
from fhircac.fhir.issues import operation_outcome
from fhircac.worker.poller import Poller, run_forever
from fhircac.worker.state import State
from fhircac.worker.subscription import register
from fhircac.worker.writeback import WritebackDeferred, WritebackRefused, write_back

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_SERVER = 0, 1, 2, 3
log = logging.getLogger("fhircac.worker")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    writeback = commands.add_parser(
        "writeback",
        help="assess one patient on a FHIR server and write the result back",
        description=(
            "Reads the patient's data from the FHIR server, assesses the latest CAC score (or --scan) and "
            "writes RiskAssessment, CarePlan and Provenance in one transaction of conditional creates; "
            "a newer scan revokes the previous CAC CarePlan. Running it again writes nothing new. "
            "Prints a JSON result line."
        ),
    )
    writeback.add_argument("--patient", required=True, help="the Patient's id on the server")
    writeback.add_argument("--scan", help="the CAC Observation id to assess (default: the latest)")
    _server_flags(writeback)

    poll = commands.add_parser(
        "poll",
        help="poll FHIR servers for new CAC Observations and write back each",
        description="Runs until SIGTERM/SIGINT (or one pass with --once); the cursor lives in --state.",
    )
    poll.add_argument(
        "--server",
        action="append",
        dest="servers",
        help="FHIR base URL; repeat for several (default FHIRCAC_POLL_SERVERS or FHIRCAC_FHIR_BASE_URL)",
    )
    poll.add_argument("--state", help="SQLite state file (default FHIRCAC_STATE_FILE)")
    poll.add_argument("--interval", type=float, help="seconds between passes (default FHIRCAC_POLL_INTERVAL)")
    poll.add_argument("--page-size", type=int, default=500, help="Observations per search page (1-1000)")
    poll.add_argument(
        "--concurrency", type=int, default=2, help="patients handled at once per page (1-16; default 2)"
    )
    poll.add_argument("--once", action="store_true", help="one pass over every server, then exit")
    poll.add_argument("--policy", help="acc-aha-2018 (default) or lifestyle-first")

    subscribe = commands.add_parser(
        "subscribe",
        help="register an R4 rest-hook Subscription for CAC Observations on a FHIR server",
        description=(
            "Creates (once per endpoint) a Subscription whose notifications go to ENDPOINT, e.g. "
            "https://fhircac.example/fhir-hook, carrying FHIRCAC_HOOK_TOKEN as a bearer header."
        ),
    )
    subscribe.add_argument("--endpoint", required=True, help="the service's /fhir-hook URL")
    subscribe.add_argument("--no-payload", action="store_true", help="notify without the Observation")
    subscribe.add_argument("--server", help="FHIR base URL (default FHIRCAC_FHIR_BASE_URL)")
    subscribe.add_argument(
        "--no-auth",
        action="store_true",
        help="register without FHIRCAC_HOOK_TOKEN, for a service run with FHIRCAC_HOOK_AUTH=off "
        "(local development only)",
    )


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", help="FHIR base URL (default FHIRCAC_FHIR_BASE_URL)")
    parser.add_argument("--policy", help="acc-aha-2018 (default) or lifestyle-first")


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        if args.command == "writeback":
            return _writeback(args, settings)
        if args.command == "poll":
            return _poll(args, settings)
        return _subscribe(args, settings)
    except (ConfigError, ValueError) as error:
        print(f"fhircac {args.command}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (FhirError, AuthError) as error:
        print(f"fhircac {args.command}: {error}", file=sys.stderr)
        return EXIT_SERVER


def _client(server: str | None, settings: Settings) -> FhirClient:
    return client_from_env(base_url=server or settings.fhir_base_url)


def _writeback(args: argparse.Namespace, settings: Settings) -> int:
    policy = get_policy(args.policy or settings.policy)
    client = _client(args.server, settings)
    try:
        result = write_back(client, args.patient, policy, scan_id=args.scan, zone=settings.zone())
    except WritebackDeferred as wait:
        print(f"fhircac writeback: {wait.reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except WritebackRefused as refusal:
        issues = refusal.issues or []
        body = operation_outcome([i for i in issues if i.is_error]) if issues else None
        print(json.dumps(body) if body else f"fhircac writeback: {refusal.reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    line = {
        "patient": result.patient,
        "scan": result.scan,
        "latest": result.latest,
        "outcome": result.outcome,
        "created": result.created,
        "superseded": result.superseded,
        "reactivated": result.reactivated,
        "withdrawn": result.withdrawn,
        "repaired": result.repaired,
    }
    print(json.dumps(line))
    return EXIT_OK


def _poll(args: argparse.Namespace, settings: Settings) -> int:
    servers = tuple(args.servers or settings.servers())
    if not servers:
        raise ConfigError(
            "no FHIR server to poll: give --server or set FHIRCAC_POLL_SERVERS/FHIRCAC_FHIR_BASE_URL"
        )
    if args.page_size < 1 or args.page_size > 1000:
        raise ConfigError("--page-size must be 1-1000")
    if args.concurrency < 1 or args.concurrency > 16:
        raise ConfigError("--concurrency must be 1-16")
    policy = get_policy(args.policy or settings.policy)
    state = State(args.state or settings.state_file)
    pollers = [
        Poller(
            _client(url, settings),
            state,
            policy,
            page_size=args.page_size,
            concurrency=args.concurrency,
            zone=settings.zone(),
        )
        for url in servers
    ]
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current Observation, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    interval = args.interval if args.interval is not None else float(settings.poll_interval)
    total, troubles = run_forever(pollers, stop, interval=interval, once=args.once)
    print(
        json.dumps(
            {
                "written": total.written,
                "unchanged": total.unchanged,
                "skipped": total.skipped,
                "deferred": total.deferred,
                "already": total.already,
                "server_trouble": troubles,
            }
        )
    )
    return EXIT_SERVER if args.once and troubles else EXIT_OK


def _subscribe(args: argparse.Namespace, settings: Settings) -> int:
    endpoint = urlsplit(args.endpoint)
    if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
        raise ConfigError(f"--endpoint {args.endpoint!r}: give the service's absolute /fhir-hook URL")
    if settings.hook_token is None and not args.no_auth:
        raise ConfigError(
            "FHIRCAC_HOOK_TOKEN is not set, and the service refuses notifications without it "
            "(FHIRCAC_HOOK_AUTH=on): set it to the service's token, or give --no-auth for a service "
            "run with FHIRCAC_HOOK_AUTH=off"
        )
    if endpoint.scheme != "https":
        log.warning(
            "--endpoint is not https: notifications%s travel unencrypted",
            "" if args.no_auth else " and their bearer token",
        )
    client = _client(args.server, settings)
    token = None if args.no_auth else settings.hook_token
    registration = register(client, args.endpoint, payload=not args.no_payload, token=token)
    print(
        json.dumps(
            {
                "subscription": f"Subscription/{registration.id}",
                "status": registration.status,
                "created": registration.created,
            }
        )
    )
    return EXIT_OK if registration.status == "active" else EXIT_SERVER

"""The `agency` command: run the local stack or one of its parts.

Expected failures (a service that won't start, a port in use, a missing setting) print one
clear message to stderr and exit non-zero; only real bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import uuid
from pathlib import Path
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError

from agency.security.rbac import AGENT_SCOPES, Role
from agency.services.process import ServiceStartError
from agency.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

WORKER_QUEUE_CHOICES = ("orchestration", "inference", "integrations", "model_control", "all")
_T = TypeVar("_T")


def _eprint(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _sigterm_as_interrupt() -> None:
    """Treat SIGTERM like Ctrl-C so cleanup (finally blocks) runs while starting up."""

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def _print_urls(urls: dict[str, str], footer: str) -> None:
    width = max(map(len, urls), default=0)
    print("\nagency is running:")
    for name, url in urls.items():
        print(f"  {name.ljust(width)}  {url}")
    print(f"{footer}\n", flush=True)


# ---- subcommands ------------------------------------------------------------------------
def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from agency.supervisor import Stack

    stack = Stack(settings, with_api=not args.no_api, with_workers=not args.no_workers)
    _sigterm_as_interrupt()
    stack.start()
    _print_urls(stack.urls(), "press Ctrl-C to stop")
    return stack.run_forever()


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from workers.main import main as worker_main

    code = worker_main(args.queue)
    sys.stdout.flush()
    sys.stderr.flush()
    # The SDK's core threads can keep the process alive after shutdown (sdk-python #300).
    os._exit(code)


def cmd_models_prepare(settings: Settings, args: argparse.Namespace) -> int:
    from agency.models_prep import prepare_models

    prepare_models(settings, progress=print)
    print(f"models ready in {settings.models_dir}")
    return 0


def cmd_models_status(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from agency.model_status import model_server_status, render_status

    status = asyncio.run(model_server_status(settings))
    print(render_status(status))
    return 0 if status.reachable else 1


def cmd_models_rollout(settings: Settings, args: argparse.Namespace) -> int:
    """Start a ModelRolloutWorkflow (watch it in the Temporal UI) and wait for its outcome."""
    import asyncio
    import uuid

    from temporalio.client import Client

    from agency.contracts import CanaryPolicy, ModelRolloutInput, ModelRolloutResult, WorkflowName

    parameters = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes KEY=VALUE, got {item!r}")
        parameters[key] = value
    rollout_id = args.rollout_id or f"{args.model}-{uuid.uuid4().hex[:8]}"

    async def run() -> ModelRolloutResult:
        client = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
        return await client.execute_workflow(
            WorkflowName.MODEL_ROLLOUT,
            ModelRolloutInput(
                rollout_id=rollout_id,
                model=args.model,
                parameters=parameters,
                policy=CanaryPolicy(),
                model_control_queue=settings.queue_model_control,
                orchestration_queue=settings.queue_orchestration,
                requested_by=f"cli:{os.environ.get('USER', 'operator')}",
            ),
            id=f"model-rollout/{rollout_id}",
            task_queue=settings.queue_orchestration,
            result_type=ModelRolloutResult,
        )

    print(f"rollout {rollout_id}: staging {args.model} with {parameters or 'the current parameters'}")
    result = asyncio.run(run())
    print(f"rollout {rollout_id}: {result.outcome}; {args.model} serves version {result.serving_version}")
    for reason in result.reasons:
        print(f"  - {reason}")
    sys.stdout.flush()
    os._exit(0 if result.outcome == "promoted" else 3)  # SDK core threads may linger (sdk-python #300)


def cmd_triton(settings: Settings, args: argparse.Namespace) -> int:
    from agency.models_prep import models_ready
    from agency.triton_server import build_triton_command

    if not models_ready(settings):
        raise RuntimeError(f"models are not prepared in {settings.models_dir}; run `agency models prepare` first")
    argv, env = build_triton_command(
        settings,
        http_port=settings.triton_http_port,
        grpc_port=settings.triton_grpc_port,
        metrics_port=settings.triton_metrics_port,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # Become tritonserver (same PID): SIGTERM reaches it directly, so it drains in-flight
    # requests (--exit-timeout-secs) and exits; its log goes to this process's stdout.
    os.execve(argv[0], argv, env)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from agency.db.migrate import upgrade_head
    from agency.db.session import resolve_database_url
    from agency.supervisor import redact_url

    url = resolve_database_url(settings)
    upgrade_head(url)
    print(f"database at {redact_url(url)} is at the latest schema")
    return 0


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from sqlalchemy.exc import DBAPIError

    from agency.db.session import create_engine, resolve_database_url, session_factory
    from agency.security.audit import ChainVerification, verify_audit_log

    async def verify() -> ChainVerification:
        engine = create_engine(resolve_database_url(settings), pool_size=1, max_overflow=0)
        try:
            async with session_factory(engine)() as session:
                return await verify_audit_log(session)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(verify())
    except DBAPIError as exc:  # unreachable database, unmigrated schema
        first_line = str(exc.orig).splitlines()[0] if str(exc.orig) else type(exc.orig).__name__
        raise RuntimeError(f"cannot read the audit log: {first_line}") from exc
    if result.ok:
        print(f"audit log intact: {result.records_checked} records")
        return 0
    where = f"record {result.bad_record_id}" if result.bad_record_id is not None else "chain head"
    _eprint(f"agency: audit log TAMPERED at {where}: {result.reason}")
    return 1


NEW_USER_PASSWORD_ENV = "AGENCY_NEW_USER_PASSWORD"


class _BadInput(Exception):
    """Input the user can fix (a mismatched password, nothing on stdin): exit 2."""


def _read_new_password(args: argparse.Namespace) -> str:
    """The env var (automation), else stdin with --password-stdin, else two hidden prompts."""
    from_env = os.environ.get(NEW_USER_PASSWORD_ENV)
    if from_env is not None:
        return from_env
    if args.password_stdin:
        # One line; only its line ending is dropped, other whitespace belongs to the password.
        line = sys.stdin.readline()
        if not line:
            raise _BadInput("--password-stdin given but stdin is empty")
        return line.rstrip("\r\n")
    import getpass

    password = getpass.getpass("password for the new user: ")
    if getpass.getpass("repeat the password: ") != password:
        raise _BadInput("the passwords do not match")
    return password


def _run_identity_command(
    settings: Settings, what: str, work: Callable[[AsyncSession], Awaitable[_T]]
) -> _T:
    """Runs ``work(session)`` in one committed transaction on a short-lived engine."""
    import asyncio

    from sqlalchemy.exc import DBAPIError

    from agency.db.session import create_engine, resolve_database_url, session_factory

    async def run() -> _T:
        engine = create_engine(resolve_database_url(settings), pool_size=1, max_overflow=0)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except DBAPIError as exc:  # unreachable database, unmigrated schema
        first_line = str(exc.orig).splitlines()[0] if str(exc.orig) else type(exc.orig).__name__
        raise RuntimeError(f"cannot {what}: {first_line}") from exc


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> int:
    from agency.db.models import User
    from agency.security.audit import append_audit_event
    from agency.security.identities import IdentityExists, check_tenant_slug, create_user, normalize_email

    try:
        # Check what we can before asking for a password the user would then have to retype.
        check_tenant_slug(args.tenant)
        normalize_email(args.email)
        password = _read_new_password(args)
    except (ValueError, _BadInput) as exc:
        _eprint(f"agency: {exc}")
        return 2

    async def create(session: AsyncSession) -> User:
        user = await create_user(
            session, tenant_slug=args.tenant, email=args.email, role=args.role, password=password
        )
        await append_audit_event(
            session, actor="cli", action="users.create", subject_type="user", subject_id=str(user.id),
            tenant_id=user.tenant_id, detail={"email": user.email, "role": user.role},
        )
        return user

    try:
        user = _run_identity_command(settings, "create the user", create)
    except (ValueError, IdentityExists) as exc:
        _eprint(f"agency: {exc}")
        return 2
    print(f"created user {user.email} ({user.role}) in tenant {args.tenant}: id {user.id}")
    return 0


def cmd_service_identities_create(settings: Settings, args: argparse.Namespace) -> int:
    from agency.db.models_identity import ServiceIdentity
    from agency.security.audit import append_audit_event
    from agency.security.identities import IdentityExists, IssuedClientCredentials, create_service_identity

    async def create(session: AsyncSession) -> IssuedClientCredentials:
        issued = await create_service_identity(
            session, tenant_slug=args.tenant, name=args.name, scopes=args.scope
        )
        # Already in the session's identity map: no query.
        identity = await session.get(ServiceIdentity, uuid.UUID(issued.client_id))
        assert identity is not None
        await append_audit_event(
            session, actor="cli", action="service_identities.create", subject_type="service_identity",
            subject_id=issued.client_id, tenant_id=identity.tenant_id,
            detail={"name": identity.name, "scopes": list(identity.scopes)},
        )
        return issued

    try:
        issued = _run_identity_command(settings, "create the service identity", create)
    except (ValueError, IdentityExists) as exc:
        _eprint(f"agency: {exc}")
        return 2
    print(f"created service identity {args.name!r} in tenant {args.tenant} (scopes: {', '.join(args.scope)})")
    print(f"client_id:     {issued.client_id}")
    print(f"client_secret: {issued.client_secret}")
    print("the client secret is shown only this once and cannot be recovered; store it now", flush=True)
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host or settings.bind_host,
        port=args.port or settings.api_port,
    )
    return 0


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from agency.sandbox.__main__ import main as sandbox_main

    return sandbox_main(args.sandbox_args)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from agency.demo import apply_demo_environment, run_demo
    from agency.supervisor import Stack

    apply_demo_environment()
    get_settings.cache_clear()
    settings = get_settings()
    stack = Stack(settings)
    _sigterm_as_interrupt()
    try:
        stack.start()
        _print_urls(stack.urls(), "the stack stops when the demo campaign is done")
        return run_demo(settings)
    finally:
        stack.stop()


def cmd_market_simulate(settings: Settings, args: argparse.Namespace) -> int:
    """Weekly spend and outcome of a simulated market with known truth, as CSV (+ truth JSON)."""
    from dataclasses import asdict

    from agency.mmm.history import scaled_market, to_csv
    from agency.mmm.simulator import random_market, simulate

    names = [n.strip() for n in args.names.split(",")] if args.names else None
    spec = random_market(
        args.seed, n_channels=args.channels, weeks=args.weeks, spend_variation=args.spend_variation,
        channel_names=names,
    )
    if args.weekly_spend:
        spec = scaled_market(spec, args.weekly_spend)
    text = to_csv(simulate(spec))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if args.truth:
        Path(args.truth).write_text(json.dumps(asdict(spec), indent=2), encoding="utf-8")
    return 0


def cmd_market_recommend(settings: Settings, args: argparse.Namespace) -> int:
    """Fit a market CSV (as `market simulate` writes) and recommend a split of a future budget."""
    from agency.mmm.allocation import AllocationRequest, GateTolerances, InsufficientEvidence, recommend
    from agency.mmm.history import from_csv

    data = from_csv(Path(args.csv).read_text(encoding="utf-8"))
    try:
        result = recommend(
            data, AllocationRequest(total_budget=args.budget, horizon_weeks=args.weeks, ramp_limit=args.ramp_limit),
            tolerances=GateTolerances(min_history_weeks=settings.market_min_history_weeks),
        )
    except ValueError as exc:
        _eprint(f"agency: {exc}")
        return 2
    if isinstance(result, InsufficientEvidence):
        print(result.reason)
        for line in result.details:
            print(f"  - {line}")
        return 3
    lo, hi = result.interval
    print(f"expected media-driven outcome over {args.weeks} weeks: {result.expected_outcome:,.1f} (90%: {lo:,.1f}-{hi:,.1f})")
    for a in result.allocations:
        print(f"  {a.channel:14s} ${a.weekly_spend:>12,.2f}/week  {a.share:6.1%}  outcome {a.expected_outcome:>10,.1f}  mROI {a.marginal_roi:.4f}")
    for note in result.notes:
        print(f"  note: {note}")
    return 0


# ---- parser -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agency", description="Autonomous marketing agency backend.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start PostgreSQL, Temporal, Triton, the sandbox, workers and the API")
    up.add_argument("--no-api", action="store_true", help="do not start the HTTP API")
    up.add_argument("--no-workers", action="store_true", help="do not start the Temporal workers")
    up.set_defaults(handler=cmd_up)

    worker = sub.add_parser("worker", help="run Temporal workers for one or more task queues")
    worker.add_argument(
        "--queue", action="append", required=True, choices=WORKER_QUEUE_CHOICES,
        help="task queue kind to serve (repeatable; 'all' serves every queue)",
    )
    worker.set_defaults(handler=cmd_worker)

    models = sub.add_parser("models", help="model weights, status and rollouts")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    prepare = models_sub.add_parser("prepare", help="convert and quantize the models once (idempotent)")
    prepare.set_defaults(handler=cmd_models_prepare)
    status = models_sub.add_parser(
        "status", help="model versions in Triton, rollout roles, queue/compute time, cache hit ratio"
    )
    status.set_defaults(handler=cmd_models_status)
    rollout = models_sub.add_parser(
        "rollout", help="load a new model version beside the serving one, canary-test it, promote or roll back"
    )
    rollout.add_argument("--model", default="content_generator", help="model to roll out (default content_generator)")
    rollout.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="parameter of the new version (repeatable), e.g. compute_type=float32 or repetition_penalty=1.2",
    )
    rollout.add_argument("--rollout-id", help="idempotency key; default: generated")
    rollout.set_defaults(handler=cmd_models_rollout)

    triton = sub.add_parser(
        "triton", help="run tritonserver on the model repository in the foreground (containers)"
    )
    triton.set_defaults(handler=cmd_triton)

    migrate = sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    migrate.set_defaults(handler=cmd_migrate)

    audit = sub.add_parser("audit", help="the tamper-evident audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit_verify = audit_sub.add_parser(
        "verify", help="recompute the audit hash chain; exit 1 naming the first altered or missing record"
    )
    audit_verify.set_defaults(handler=cmd_audit_verify)

    users = sub.add_parser("users", help="people who sign in to the API")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    users_create = users_sub.add_parser(
        "create",
        help=f"create a user (tenant created if missing); password from ${NEW_USER_PASSWORD_ENV}, "
        "--password-stdin or a prompt",
    )
    users_create.add_argument("--tenant", required=True, metavar="SLUG", help="tenant slug")
    users_create.add_argument("--email", required=True, help="sign-in name, stored lower-case")
    users_create.add_argument("--role", required=True, choices=[role.value for role in Role])
    users_create.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )
    users_create.set_defaults(handler=cmd_users_create)

    service_identities = sub.add_parser(
        "service-identities", help="machine clients using the OAuth2 client-credentials grant"
    )
    service_identities_sub = service_identities.add_subparsers(
        dest="service_identities_command", required=True, metavar="ACTION"
    )
    service_identities_create = service_identities_sub.add_parser(
        "create", help="create a service identity and print its client id and secret (shown once)"
    )
    service_identities_create.add_argument("--tenant", required=True, metavar="SLUG", help="tenant slug")
    service_identities_create.add_argument("--name", required=True, help="unique within the tenant")
    service_identities_create.add_argument(
        "--scope", action="append", required=True, metavar="SCOPE",
        help=f"repeatable: an agent scope ({', '.join(AGENT_SCOPES)}) or a permission such as metrics:read",
    )
    service_identities_create.set_defaults(handler=cmd_service_identities_create)

    api = sub.add_parser("api", help="run the HTTP API in this process")
    api.add_argument("--host", default=None, help="default: AGENCY_BIND_HOST")
    api.add_argument("--port", type=int, default=None, help="default: AGENCY_API_PORT")
    api.set_defaults(handler=cmd_api)

    sandbox = sub.add_parser(
        "sandbox", help="run the local sandbox publishing channel (options as python -m agency.sandbox)"
    )
    sandbox.add_argument("sandbox_args", nargs=argparse.REMAINDER)
    sandbox.set_defaults(handler=cmd_sandbox)

    market = sub.add_parser("market", help="market simulator and the budget allocation agent on CSV files")
    market_sub = market.add_subparsers(dest="market_command", required=True, metavar="ACTION")
    simulate = market_sub.add_parser("simulate", help="weekly spend/outcome from known adstock + Hill curves, as CSV")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--channels", type=int, default=None, help="default: 3-6, drawn from the seed")
    simulate.add_argument("--names", default="", help="comma-separated channel names (sets the count)")
    simulate.add_argument("--weeks", type=int, default=156, help="weeks of history (the agent advises from 156)")
    simulate.add_argument("--spend-variation", type=float, default=0.4, help="coefficient of variation of weekly spend")
    simulate.add_argument("--weekly-spend", type=float, default=None, help="rescale to this total weekly spend ($)")
    simulate.add_argument("--out", default="", help="CSV file (default: stdout)")
    simulate.add_argument("--truth", default="", help="write the true parameters here as JSON")
    simulate.set_defaults(handler=cmd_market_simulate)
    recommend = market_sub.add_parser("recommend", help="fit a market CSV, run the recovery gate, split a budget")
    recommend.add_argument("csv")
    recommend.add_argument("--budget", type=float, required=True, help="total budget ($) over the horizon")
    recommend.add_argument("--weeks", type=int, default=8, help="horizon in weeks")
    recommend.add_argument("--ramp-limit", type=float, default=None)
    recommend.set_defaults(handler=cmd_market_recommend)

    demo = sub.add_parser("demo", help="start the whole stack, run a demo campaign through the API, stop")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        _eprint(f"agency: invalid settings:\n{exc}")
        return 2
    except RuntimeError as exc:  # production refuses local defaults
        _eprint(f"agency: {exc}")
        return 2
    try:
        return args.handler(settings, args)
    except ServiceStartError as exc:
        _eprint(f"agency: {exc}")
        return 1
    except KeyboardInterrupt:
        _eprint("agency: interrupted")
        return 130
    except (RuntimeError, FileNotFoundError) as exc:  # e.g. "run `agency up`" from resolve_database_url
        _eprint(f"agency: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())

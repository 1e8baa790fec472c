"""`python -m zg_load.aiops`: run the reference AI Ops service until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from zg_load.aiops.config import DEFECTS, ServiceConfig
from zg_load.aiops.server import serve


def parse_args(argv: Sequence[str] | None = None, prog: str = "zg-load serve") -> ServiceConfig:
    """The `ServiceConfig` described by command-line arguments."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve the reference AI Ops service (budget, admission, models, checks, "
        "faults) until Ctrl-C. It prints its URL and, when it generated one, its admin token.",
        epilog="examples:\n  zg-load serve --port 8080\n"
        "  zg-load serve --port 8080 --db ledger.db --time-scale 0.1\n"
        "  zg-load serve --port 8080 --workers 8 --service-time-ms 2 --defect shedding",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default = ServiceConfig()
    parser.add_argument(
        "--host", default=default.host, help=f"address to bind (default {default.host})"
    )
    parser.add_argument(
        "--port", type=int, default=default.port, help="0 picks a free port (default 0)"
    )
    parser.add_argument("--db", default=None, help="SQLite ledger file (default: a temporary one)")
    parser.add_argument("--token", default=None, help="admin bearer token (default: generated)")
    parser.add_argument(
        "--workers",
        type=int,
        default=default.approval_workers,
        help=f"approval workers (default {default.approval_workers})",
    )
    parser.add_argument(
        "--service-time-ms",
        type=float,
        default=default.approval_service_time_s * 1000,
        help="simulated time each approval takes a worker "
        f"(default {default.approval_service_time_s * 1000:g}; capacity = workers / service time)",
    )
    parser.add_argument(
        "--queue-bound",
        type=int,
        default=default.queue_bound,
        help=f"approvals that may wait before the lowest priority is shed (default {default.queue_bound})",
    )
    parser.add_argument(
        "--max-queue-wait-ms",
        type=float,
        default=default.max_queue_wait_s * 1000,
        help=f"longest an approval may wait before it is shed (default {default.max_queue_wait_s * 1000:g})",
    )
    parser.add_argument(
        "--budget-usd",
        type=float,
        default=None,
        help="budget limit (default: the ledger's; 100 when new)",
    )
    parser.add_argument("--window", default=default.budget_window, help="e.g. 1d, 12h, 30m")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=default.time_scale,
        help="multiplies simulated durations (model latency, breaker waits, reservation TTL)",
    )
    parser.add_argument("--seed", type=int, default=default.seed, help="seed of every random draw")
    parser.add_argument(
        "--rate-limit-per-agent",
        type=float,
        default=None,
        help="requests/s allowed per agent id (default: no limit)",
    )
    parser.add_argument(
        "--defect",
        action="append",
        default=[],
        choices=sorted(DEFECTS),
        metavar="NAME",
        help="break one behaviour on purpose (repeatable): "
        + "; ".join(f"{name}: {what}" for name, what in DEFECTS.items()),
    )
    args = parser.parse_args(argv)
    try:
        return _config(args)
    except ValueError as exc:
        parser.error(str(exc))


def _config(args: argparse.Namespace) -> ServiceConfig:
    return ServiceConfig(
        host=args.host,
        port=args.port,
        db_path=args.db,
        admin_token=args.token,
        approval_workers=args.workers,
        approval_service_time_s=args.service_time_ms / 1000,
        queue_bound=args.queue_bound,
        max_queue_wait_s=args.max_queue_wait_ms / 1000,
        budget_usd=args.budget_usd,
        budget_window=args.window,
        time_scale=args.time_scale,
        seed=args.seed,
        rate_limit_per_agent_per_s=args.rate_limit_per_agent,
        defects=frozenset(args.defect),
    )


def main(argv: Sequence[str] | None = None) -> None:
    serve(parse_args(argv))


if __name__ == "__main__":
    main()

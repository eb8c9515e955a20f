"""Run the sandbox channel: ``python -m agency.sandbox --host 127.0.0.1 --port P --db PATH``.

The bearer token comes from ``AGENCY_SANDBOX_TOKEN`` or ``AGENCY_CHANNEL_TOKEN`` (never argv);
without it the public local default is used, and then only a loopback host is allowed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from agency.net import is_loopback
from agency.sandbox.app import create_sandbox_app, resolve_tokens
from agency.settings import Settings


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m agency.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.sandbox_port)
    parser.add_argument("--db", type=Path, default=settings.data_dir / "sandbox.sqlite")
    parser.add_argument(
        "--time-scale", type=float, default=3600.0,
        help="simulated seconds per real second for audience metrics (default 3600)",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    try:
        _, default_token = resolve_tokens(None)
    except RuntimeError as exc:
        parser.error(str(exc))
    if default_token and not is_loopback(args.host):
        parser.error(
            f"refusing to serve the public default token on {args.host}; set AGENCY_SANDBOX_TOKEN"
        )
    app = create_sandbox_app(args.db, time_scale=args.time_scale)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``ticketpost worker``: the routing worker role (Redis queue); threads and processes scale it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def register(sub) -> None:
    parser = sub.add_parser(
        "worker",
        help="run routing workers on the Redis queue (needs TICKETPOST_REDIS_URL)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="routing threads per process "
        "(default: TICKETPOST_WORKER_THREADS)",
    )
    parser.add_argument(
        "--processes", type=int, default=1,
        help="worker processes to run (each with --threads threads); default 1",
    )
    parser.add_argument(
        "--no-sweeper", action="store_true",
        help="do not re-send stored but unrouted messages from this process",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.processes > 1:
        return _supervise(args)
    from ticketpost.up import run_worker

    return run_worker(threads=args.threads, sweeper=not args.no_sweeper)


def _supervise(args) -> int:
    """Start ``--processes`` single-process workers, forward SIGTERM/SIGINT, wait for all."""
    base = [sys.executable, "-m", "ticketpost.cli", "worker", "--processes", "1"]
    if args.threads:
        base += ["--threads", str(args.threads)]
    children = []
    for index in range(args.processes):
        # One sweeper is enough per group of processes.
        extra = ["--no-sweeper"] if (index > 0 or args.no_sweeper) else []
        # Own process group: a terminal's Ctrl-C reaches only this supervisor, which forwards
        # it once (a second signal would make a child exit without finishing its work).
        children.append(subprocess.Popen(base + extra, env=os.environ.copy(),
                                         start_new_session=True))

    def _forward(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    codes = [child.wait() for child in children]
    return max(codes, default=0)

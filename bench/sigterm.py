"""Seconds from SIGTERM to exit for a trainer writing to gs:// over slow storage.

Kubernetes sends SIGTERM, waits terminationGracePeriodSeconds, then SIGKILLs; on a
Spot node GKE gives non-system pods 15 s of its 30 s notice. This starts `make
train`'s trainer against a real storage server (gcp-storage-emulator on 127.0.0.1,
behind tests/fakes/gcs_proxy.py, which enforces Cloud Storage's preconditions and
here slows every request by --delay seconds once training runs), sends SIGTERM in
the middle of an iteration, and times the exit. The trainer checkpoints, uploads
until its --sigterm_budget runs out, names what stays local and exits 143. Each
trial is a fresh run; the report gives every trial, p50 and p99 against the budget.

    python -m bench.sigterm --trials 10 --delay 3
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import tempfile
import time

from bench import common  # noqa: E402
from trainer.config import Config  # noqa: E402
from trainer.launch import free_port  # noqa: E402


def _trial(index: int, proxy, staging: str, args, rng: random.Random) -> tuple[float, bool]:
    """(seconds from SIGTERM to exit, whether the trainer gave up uploading)."""
    env = {**os.environ, "STORAGE_EMULATOR_HOST": proxy.url, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = common.trainer_command(
        "gs://sigterm-bench/runs",
        f"sigterm-{index}",
        [
            "--total_steps=10000000",
            f"--staging_dir={staging}",
            "--eval_interval=0",
            f"--sigterm_budget={args.budget}",
        ],
    )
    proxy.delay = 0.0
    proc = subprocess.Popen(
        command, cwd=common.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 600
    for line in proc.stderr:  # the first progress line: collecting and learning
        if line.startswith(b"step ") or time.time() > deadline:
            break
    proxy.delay = args.delay
    time.sleep(args.warmup + rng.uniform(0.0, 3.0))  # anywhere in an iteration
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # Kubernetes signals the main process only
    tail = proc.stderr.read().decode(errors="replace").strip().splitlines()[-15:]
    code = proc.wait()
    seconds = time.monotonic() - start
    if code != 128 + signal.SIGTERM:
        raise SystemExit(f"trial {index}: exit code {code}, expected 143:\n" + "\n".join(tail))
    return seconds, any(line.startswith("Out of time after SIGTERM") for line in tail)


def _percentile(values: list[float], q: float) -> float:
    """The q-th percentile, linear between the nearest ranks (numpy's default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="fresh runs to time")
    parser.add_argument("--delay", type=float, default=3.0, help="seconds added to each request")
    parser.add_argument(
        "--budget", type=float, default=Config.sigterm_budget, help="the trainer's --sigterm_budget"
    )
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of training first")
    args = parser.parse_args()
    from gcp_storage_emulator import server as emulator

    from tests.fakes.gcs_proxy import PreconditionProxy
    from trainer import storage

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = emulator.create_server("127.0.0.1", port, data_dir=os.path.join(tmp, "gcs"))
        server.start()
        proxy = PreconditionProxy(f"http://127.0.0.1:{port}").start()
        os.environ["STORAGE_EMULATOR_HOST"] = proxy.url
        storage.make_client().create_bucket("sigterm-bench")
        seconds, gave_up = [], 0
        try:
            for index in range(args.trials):
                staging = os.path.join(tmp, f"staging-{index}")
                took, out_of_time = _trial(index, proxy, staging, args, rng)
                seconds.append(took)
                gave_up += out_of_time
                print(
                    f"trial {index + 1}/{args.trials}: {took:.1f} s"
                    + (" (gave up uploading, named what stays local)" if out_of_time else ""),
                    flush=True,
                )
        finally:
            proxy.stop()
            server.stop()
    p50, p99 = statistics.median(seconds), _percentile(seconds, 99)
    verdict = "within" if p99 <= args.budget else "OVER"
    print(
        f"SIGTERM to exit 143 at {args.delay:g} s a storage request, {args.trials} trials "
        f"({gave_up} gave up uploading): p50 {p50:.1f} s, p99 {p99:.1f} s, largest "
        f"{max(seconds):.1f} s; {verdict} the {args.budget:g} s budget"
    )


if __name__ == "__main__":
    main()

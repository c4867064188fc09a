"""Seconds from SIGTERM to exit for a trainer writing to gs://, final upload included.

Kubernetes sends SIGTERM, waits terminationGracePeriodSeconds, then SIGKILLs; on a
Spot node GKE gives non-system pods 15 s of its 30 s notice. This starts `make
train`'s trainer against a real storage server (gcp-storage-emulator on 127.0.0.1),
lets it upload, sends SIGTERM in the middle of an iteration, and times the exit: the
trainer saves a checkpoint, exports the policy and uploads the rest before it exits
143. Each trial is a fresh run; the report gives every trial, the median and the
largest.

    python bench/sigterm.py --trials 5
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from trainer.launch import free_port  # noqa: E402


def _trial(index: int, url: str, staging: str, warmup: float, rng: random.Random) -> float:
    env = {**os.environ, "STORAGE_EMULATOR_HOST": url, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = common.trainer_command(
        "gs://sigterm-bench/runs",
        f"sigterm-{index}",
        ["--total_steps=10000000", f"--staging_dir={staging}", "--eval_interval=0"],
    )
    proc = subprocess.Popen(
        command, cwd=common.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 600
    for line in proc.stderr:  # the first progress line: collecting and learning
        if line.startswith(b"step ") or time.time() > deadline:
            break
    time.sleep(warmup + rng.uniform(0.0, 3.0))  # anywhere in an iteration
    start = time.time()
    proc.send_signal(signal.SIGTERM)  # Kubernetes signals the main process only
    tail = proc.stderr.read().decode(errors="replace").strip().splitlines()[-15:]
    code = proc.wait()
    seconds = time.time() - start
    if code != 128 + signal.SIGTERM:
        raise SystemExit(f"trial {index}: exit code {code}, expected 143:\n" + "\n".join(tail))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="fresh runs to time")
    parser.add_argument(
        "--warmup", type=float, default=20.0, help="seconds of training before SIGTERM"
    )
    args = parser.parse_args()
    from gcp_storage_emulator import server as emulator

    from trainer import storage

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = emulator.create_server("127.0.0.1", port, data_dir=os.path.join(tmp, "gcs"))
        server.start()
        url = f"http://127.0.0.1:{port}"
        os.environ["STORAGE_EMULATOR_HOST"] = url
        storage.make_client().create_bucket("sigterm-bench")
        seconds = []
        try:
            for index in range(args.trials):
                staging = os.path.join(tmp, f"staging-{index}")
                seconds.append(_trial(index, url, staging, args.warmup, rng))
                print(f"trial {index + 1}/{args.trials}: {seconds[-1]:.1f} s", flush=True)
        finally:
            server.stop()
    print(
        f"SIGTERM to exit 143 (checkpoint, export, final upload to gs://), {args.trials} "
        f"trials: median {statistics.median(seconds):.1f} s, largest {max(seconds):.1f} s"
    )


if __name__ == "__main__":
    main()

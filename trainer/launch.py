"""Runs the distributed roles as local processes on 127.0.0.1: `task.py distributed`.

One Reverb server on a free port, one learner and N collectors, each a
`python -m trainer.task ROLE` child in its own session, so a Ctrl-C reaches only
this supervisor, which then stops the children in order (collectors, learner,
which checkpoints on SIGTERM, then the server) and leaves no process behind. A
collector that fails while the learner runs is restarted and rejoins.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time

from trainer import processes

# A collector that keeps failing is given up after this many restarts.
MAX_RESTARTS = 3
# How long children get to exit on their own, then after SIGTERM.
GRACE_SECONDS = 60


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_port_free(port: int) -> None:
    """ValueError naming `port` if a program listens on it (a Reverb server included).

    gRPC binds its listeners with SO_REUSEPORT (grpc/grpc,
    src/core/lib/iomgr/tcp_server_utils_posix_common.cc,
    grpc_tcp_server_prepare_socket, unless GRPC_ARG_ALLOW_REUSEPORT is 0), so a
    second Reverb server on a port starts beside the first and the kernel splits new
    clients between them; a port another program holds fails inside gRPC without
    naming the port. A bind without SO_REUSEPORT fails on both. SO_REUSEADDR lets it
    past the TIME_WAIT connections a server just stopped leaves, but on Linux never
    past a listener.
    """
    family, host = (socket.AF_INET6, "::") if socket.has_ipv6 else (socket.AF_INET, "")
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            raise ValueError(
                f"port {port} is taken ({e.strerror}): another Reverb server or another "
                "program listens on it; stop it or choose another --port"
            ) from None


def _log(msg: str) -> None:
    print(f"[distributed] {msg}", file=sys.stderr, flush=True)


class Supervisor:
    """Starts and stops the role processes; `run` returns the learner's exit code."""

    def __init__(self, flags: list[str], collectors: int, port: int | None = None, log=_log):
        self._flags, self._collectors, self._log = flags, collectors, log
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}

    def _start(self, name: str, role: str, *extra: str) -> None:
        command = [sys.executable, "-m", "trainer.task", role, *self._flags, *extra]
        self.procs[name] = subprocess.Popen(
            command, start_new_session=True, preexec_fn=processes.die_with_parent
        )

    def _start_collector(self, task: int) -> None:
        self._start(
            f"collector-{task}", "collect", f"--reverb_address={self.address}", f"--task={task}"
        )

    def start(self) -> None:
        self._log(f"Reverb on {self.address}, 1 learner, {self._collectors} collectors")
        self._start("reverb", "reverb", f"--port={self.port}")
        self._start("learner", "learn", f"--reverb_address={self.address}")
        for task in range(self._collectors):
            self._start_collector(task)

    def _watch(self) -> int:
        while True:
            code = self.procs["learner"].poll()
            if code is not None:
                return code
            if self.procs["reverb"].poll() is not None:
                self._log(f"the Reverb server exited with code {self.procs['reverb'].returncode}")
                return 1
            given_up = 0
            for task in range(self._collectors):
                name = f"collector-{task}"
                code = self.procs[name].poll()
                if code in (None, 0):
                    continue
                if self.restarts.get(name, 0) < MAX_RESTARTS:
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    self._log(f"{name} exited with code {code}; restarting it")
                    self._start_collector(task)
                else:
                    given_up += 1
            if given_up == self._collectors:
                self._log(f"no collector left: each failed {MAX_RESTARTS + 1} times")
                return 1
            time.sleep(0.5)

    def _wait(self, names, seconds: float) -> None:
        deadline = time.time() + seconds
        for name in names:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.procs[name].wait(timeout=max(deadline - time.time(), 0.1))

    def stop(self) -> None:
        """Collectors, then the learner, then the server: SIGTERM, a grace period, SIGKILL."""
        collectors = [n for n in self.procs if n.startswith("collector-")]
        for group in (collectors, ["learner"], ["reverb"]):
            alive = [n for n in group if n in self.procs and self.procs[n].poll() is None]
            for name in alive:
                self.procs[name].send_signal(signal.SIGTERM)
            self._wait(alive, GRACE_SECONDS)
            for name in alive:
                if self.procs[name].poll() is None:
                    self._log(f"{name} ignored SIGTERM; killing it")
                    self.procs[name].kill()
                    self.procs[name].wait()

    def run(self) -> int:
        self.start()
        try:
            code = self._watch()
            if code == 0:
                # The learner's final variables tell collectors to stop.
                self._wait([n for n in self.procs if n.startswith("collector-")], GRACE_SECONDS)
            return code
        finally:
            self.stop()

"""Subprocesses, routers and ports for the tests, and the check that no process a test
started outlives it."""

from __future__ import annotations

import ctypes
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

ROUTER_LISTENING = "Router listening on "


class Proc:
    """A subprocess in a session of its own, whose output threads read as it comes: lines
    can be awaited without blocking on a full pipe, and everything is kept for failure
    messages. Its own session (and process group) means that cleanup ends whatever it
    started too, and that a Ctrl-C in the terminal running pytest does not reach it."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.popen = subprocess.Popen(
            self.argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self.stdout, True)),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.stderr, False)),
        ]
        for t in self._readers:
            t.daemon = True
            t.start()

    def _read(self, stream, sink: list[str], announce: bool) -> None:
        for line in stream:
            sink.append(line)
            if announce:
                self._lines.put(line.rstrip("\n"))
        if announce:
            self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    @property
    def out(self) -> str:
        return "".join(self.stdout)

    @property
    def err(self) -> str:
        return "".join(self.stderr)

    @property
    def output(self) -> str:
        """The command, its exit status and everything it printed, for failure messages."""
        return (
            f"$ {shlex.join(self.argv)}\nexit: {self.popen.returncode}\n"
            f"--- stdout\n{self.out}--- stderr\n{self.err[-5000:]}"
        )

    def read_line(self, prefix: str, timeout: float = 60.0) -> str | None:
        """The first stdout line (from here on) starting with ``prefix``; ``None`` if the
        process ends first or none comes within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                return None
            if line is None:
                self._lines.put(None)  # later calls see the end too
                self.popen.wait(10)
                return None
            if line.startswith(prefix):
                return line

    def wait_for_line(self, prefix: str, timeout: float = 60.0) -> str:
        """As `read_line`, failing the test when no such line comes."""
        line = self.read_line(prefix, timeout)
        if line is None:
            self.kill()
            pytest.fail(f"no line starting with {prefix!r} within {timeout} s\n{self.output}")
        return line

    def write(self, text: str) -> None:
        assert self.popen.stdin is not None, "started without stdin=subprocess.PIPE"
        self.popen.stdin.write(text)
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        assert self.popen.stdin is not None, "started without stdin=subprocess.PIPE"
        self.popen.stdin.close()

    def wait(self, timeout: float) -> int:
        """Wait for the exit; kill and fail the test after ``timeout`` seconds."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running after {timeout} s\n{self.output}")
        self._join_readers()
        return code

    def _join_readers(self) -> None:
        # The pipes end when every process holding them has exited: what the process
        # printed is read at once, but a descendant still running keeps them open.
        for t in self._readers:
            t.join(5)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        """Send ``sig`` to the process (not its group) and wait for the exit."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        return self.wait(timeout)

    def sigkill(self) -> float:
        """SIGKILL the process and its group (a crash); returns the monotonic time it was
        sent."""
        killed_at = time.monotonic()
        self.kill()
        return killed_at

    def kill(self) -> None:
        """End the process and everything in its group, if still running."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(10)
        self._join_readers()
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            try:
                self.popen.stdin.close()
            except BrokenPipeError:
                pass

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def run(argv: Sequence[str], timeout: float, **kw) -> Proc:
    """Run to completion (killed, and the test failed, after ``timeout`` seconds)."""
    proc = Proc(argv, **kw)
    proc.wait(timeout)
    return proc


@contextmanager
def running(*procs: Proc) -> Iterator[list[Proc]]:
    """Kill whatever is still running on the way out, failure or not: ``procs`` and any
    process appended to the list this yields (in reverse order)."""
    started = list(procs)
    try:
        yield started
    finally:
        for p in reversed(started):
            p.kill()


def close_inputs_and_expect_success(procs: Iterable[Proc], timeout: float = 30.0) -> None:
    """Close every process's stdin (its signal to finish), then each must exit 0."""
    procs = list(procs)
    for p in procs:
        p.close_stdin()
    for p in procs:
        assert p.wait(timeout) == 0, p.output


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any evospikenet setting, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("EVOSPIKENET_") and k != "NODE_ID"
    }
    env.update(extra or {})
    return env


def free_ports(n: int = 1) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago. For the few places that
    must name a port before the process that listens on it starts (a command line, a
    restart on the same endpoint); everywhere else, listen on port 0."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --- the router entry point ----------------------------------------------------------------


def router_argv(listen: Sequence[str], prefix: Sequence[str] = ()) -> list[str]:
    """``evospikenet-router`` listening on ``listen``, after ``prefix`` (e.g. ``ip netns
    exec NS``): the console script of this interpreter, else the module."""
    script = Path(sysconfig.get_path("scripts")) / "evospikenet-router"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "evospikenet.router"]
    for ep in listen:
        argv += ["--listen", ep]
    return [*prefix, *argv]


def start_router(
    listen: Sequence[str], prefix: Sequence[str] = (), timeout: float = 30.0
) -> tuple[Proc, list[str]]:
    """Start a router and wait for its "Router listening on" line; returns the process
    and the locators it names. Fails the test if it does not start."""
    proc = Proc(router_argv(listen, prefix), env=clean_env())
    line = proc.wait_for_line(ROUTER_LISTENING, timeout)
    return proc, [loc.strip() for loc in line[len(ROUTER_LISTENING) :].split(",")]


# --- no process outlives its test ----------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux): a process whose parent
    died before it (a node of a launcher that was killed) then shows up as our child
    instead of escaping to init, so `live_children` sees it."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _stat(pid: str) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of ``pid``, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[2])


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children_of(pid: int) -> list[int]:
    """Running (not zombie) processes whose parent is ``pid``, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _stat(entry.name)
        if st is not None and st[1] == pid and st[0] != "Z":
            out.append(int(entry.name))
    return sorted(out)


def live_children() -> list[int]:
    """This process's running children, except multiprocessing's resource tracker (one
    per session, started by the first process created with ``spawn``)."""
    return [
        pid
        for pid in children_of(os.getpid())
        if "multiprocessing.resource_tracker" not in _cmdline(pid)
    ]


def end_process_tree(pid: int) -> None:
    """SIGKILL ``pid``, its process group (when it leads its own) and its descendants, and
    reap those that are, or become (as orphans), our children."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children_of(p)
    st = _stat(str(pid))
    if st is not None and st[2] == pid and pid != os.getpgrp():
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    pending = set(tree)
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        for p in list(pending):
            try:
                if os.waitpid(p, os.WNOHANG)[0]:
                    pending.discard(p)
            except ChildProcessError:
                # Not (or no longer) our child: gone, or its own parent reaps it.
                if not os.path.exists(f"/proc/{p}"):
                    pending.discard(p)
        time.sleep(0.01)


def leftover_children(grace: float = 3.0) -> list[str]:
    """Children still running ``grace`` seconds from now (a process the test just stopped
    may still be on its way out): each is killed with its descendants and described."""
    deadline = time.monotonic() + grace
    while (pids := live_children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    described = [f"pid {pid}: {_cmdline(pid)[:300]}" for pid in pids]
    for pid in pids:
        end_process_tree(pid)
    return described

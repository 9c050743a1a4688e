"""The rules the suite runs under (tests/conftest.py, tests/support/procs.py)."""

import os
import sys

from support.procs import Proc, leftover_children, run


def test_processes_started_by_tests_get_ctrl_c():
    """Even when pytest itself was started with SIGINT ignored (a background job of a
    script, as CI runs it), what a test starts sees SIGINT as a terminal's Ctrl-C delivers
    it: the tests of what Ctrl-C does depend on it."""
    check = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    r = run([sys.executable, "-c", check], timeout=60)
    assert r.out.strip() == "True", r.output


def test_an_orphaned_process_is_found_and_ended():
    """A process whose parent exits first (a node whose launcher died) is still found, and
    ended: orphans are adopted by the test process instead of escaping to init."""
    with Proc(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"]) as parent:
        orphan = int(parent.wait_for_line(""))
        assert parent.wait(30) == 0
    assert os.path.exists(f"/proc/{orphan}")
    leftover = leftover_children(grace=0)
    assert [line.split(":")[0] for line in leftover] == [f"pid {orphan}"], leftover
    assert not os.path.exists(f"/proc/{orphan}")


def test_a_process_still_running_is_ended_with_its_descendants():
    with Proc(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!; exec sleep 600"]) as parent:
        child = int(parent.wait_for_line(""))
        leftover = leftover_children(grace=0)
        assert [line.split(":")[0] for line in leftover] == [f"pid {parent.pid}"], leftover
        assert not os.path.exists(f"/proc/{parent.pid}")
        assert not os.path.exists(f"/proc/{child}")

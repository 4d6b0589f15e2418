"""A stop that outlives its deadline ends the process anyway (`ExitDeadline`): whatever holds it,
here a main thread that waits forever, as a hung close or an unjoinable thread would."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from app.shutdown import EXIT_FORCED

_HELD_FOREVER = textwrap.dedent(
    """
    import logging, threading
    from app.shutdown import ExitDeadline
    logging.basicConfig(level=logging.INFO)
    ExitDeadline(0.2).arm()
    threading.Event().wait()  # nothing else would ever end this process
    """
)


def test_a_stop_held_past_its_deadline_exits_with_its_own_code() -> None:
    done = subprocess.run([sys.executable, "-c", _HELD_FOREVER], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_FORCED
    assert "exiting now with code 3" in done.stderr  # and says why


def test_a_process_that_ends_in_time_is_not_held_by_the_deadline() -> None:
    script = "from app.shutdown import ExitDeadline\nExitDeadline(3600).arm()\nprint('done')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "done")  # a daemon thread: it holds nothing

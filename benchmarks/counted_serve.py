"""`chorus serve` with every database command it sends counted (a PyMongo command listener).

    python benchmarks/counted_serve.py OUT

Run as a script (not `-m`), so the `app` package comes from PYTHONPATH: this tree, or the
checkout of a baseline. SIGUSR1 writes ``{"commands": N, "by_name": {...}}`` to OUT: the commands
started since the process began (one per round trip to the database).
"""

from __future__ import annotations

import faulthandler
import json
import signal
import sys
from collections import Counter
from pathlib import Path
from types import FrameType

from pymongo import monitoring


class _Counter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.by_name: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.by_name[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/counted_serve.py OUT")
    out = Path(sys.argv[1])
    counter = _Counter()
    monitoring.register(counter)  # every client created from now on reports to it

    def dump(signum: int, frame: FrameType | None) -> None:
        partial = out.with_suffix(".partial")
        by_name = dict(counter.by_name)
        partial.write_text(json.dumps({"commands": sum(by_name.values()), "by_name": by_name}))
        partial.replace(out)

    signal.signal(signal.SIGUSR1, dump)
    faulthandler.register(signal.SIGUSR2, all_threads=False)  # a stack dump of a stuck process (debugging)
    from app.cli import main as chorus_main

    sys.argv = ["chorus", "serve"]
    chorus_main()


if __name__ == "__main__":
    main()

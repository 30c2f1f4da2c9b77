"""Profile the in-process check path (``CheckHandler.answer``) with pyinstrument.

The workload of ``benchmarks/check_path.py``: 1,000 accounts × 20 positions, 10 policies,
20,000 ``dry_run`` requests, marks refreshed before each pass. Prints pyinstrument's call tree
(the profiles in ``docs/profiles/inprocess-*.txt`` were made this way).

    .venv/bin/pip install -e '.[profile]'        # pyinstrument
    .venv/bin/python benchmarks/profile_check_path.py [PASSES]
"""

from __future__ import annotations

import sys

from pyinstrument import Profiler

from risk_worker.adapters.check_handler import CheckHandler
from risk_worker.bench.core import (
    MAX_REQUEST_BYTES,
    WORKER_ID,
    NullSink,
    build_engine,
    refresh_marks,
    request_bodies,
)


def main() -> int:
    """Profile ``PASSES`` passes (10 by default) and print the call tree; 0 on success."""
    passes = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    engine = build_engine(1000, 20)
    bodies = request_bodies(20_000, 1000, 20)
    handler = CheckHandler(engine, lambda: True, WORKER_ID, MAX_REQUEST_BYTES, NullSink())
    for body in bodies[:2000]:  # warm up
        handler.answer(body)
    profiler = Profiler(interval=0.0001)
    profiler.start()
    for _ in range(passes):
        refresh_marks(engine, 20)
        for body in bodies:
            handler.answer(body)
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

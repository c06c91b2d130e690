"""The rest of a screening wrapper's command line, run in the wrapper's process so that it sees the wrapper's patch:
a benchmark script (`path/to/script.py ARGS`, as `python path/to/script.py ARGS` would run it) or a `cleardiffusion`
subcommand (`distill ARGS`). Wrappers call `run_rest()` once they have patched the library and popped their own
arguments from sys.argv (guidance_interval.py, grow_level.py, mixture_prior.py, mixture_info.py, free_code.py,
dmd_anchor.py, two_students.py)."""

import runpy
import sys

from cleardiffusion.cli import main


def run_rest() -> None:
    if sys.argv[1].endswith(".py"):
        sys.argv.pop(0)
        runpy.run_path(sys.argv[0], run_name="__main__")
    else:
        sys.exit(main())

"""The ``rtlgen`` command line: the group (:mod:`.app`) and one module per command, each imported here explicitly."""

from . import build, core, doctor, inspect, predict, report, run, sim
from .app import main

for _cmd in (doctor.doctor, inspect.inspect, predict.predict, run.run_cmd, build.build, sim.sim, core.core, report.report):
    main.add_command(_cmd)

__all__ = ["main"]

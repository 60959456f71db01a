"""Demo data: a synthetic migrant population and a realistic stream of cross-agency accesses.

:mod:`gateway.demo.population` invents households (names, GB 11643 numbers,
origin and destination regions), :mod:`gateway.demo.records` their records
in the catalogue's exchange format, and :mod:`gateway.demo.seed` registers
them and acts out the accesses through the SDK, against a running gateway or
the app in-process (:mod:`gateway.demo.inprocess`). ``accessledger demo``
is the command.
"""

from gateway.demo.seed import DemoReport, seed_demo

__all__ = ["DemoReport", "seed_demo"]

"""The oracle base model of §6.1 and the certification methods run on its counts.

Moved to the library as :mod:`multitest.oracle` (the demo and
:mod:`multitest.power_study` use it; the library never imports ``simulations``).
This module re-exports it for existing scripts and notebooks.
"""

from multitest.oracle import *  # noqa: F403
from multitest.oracle import __all__  # noqa: F401

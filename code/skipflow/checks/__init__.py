"""Exercise checkers, one function per exercise, grouped by chapter in ``ch0`` … ``ch5``.

Call them as ``skipflow.checks.<name>(your_answer)``. Each prints a verdict and returns True or False; none
of them raises, whatever the answer does (see :mod:`skipflow.checks._core`).
"""

from skipflow.checks._core import exercise
from skipflow.checks.ch0 import *  # noqa: F403
from skipflow.checks.ch1 import *  # noqa: F403
from skipflow.checks.ch2 import *  # noqa: F403
from skipflow.checks.ch3 import *  # noqa: F403
from skipflow.checks.ch4 import *  # noqa: F403
from skipflow.checks.ch5 import *  # noqa: F403
from skipflow.checks.ch6 import *  # noqa: F403

__all__ = ["exercise"]

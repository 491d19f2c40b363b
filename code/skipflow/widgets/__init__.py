"""Interactive explorers (ipywidgets). Every explorer also has a static figure at its defaults, so the
HTML book never shows an empty widget area.

- :mod:`skipflow.widgets.gradient_flow`: chapter 1's per-layer gradient-norm explorer
- :mod:`skipflow.widgets.orderings`: chapter 4's ordering/depth explorer
"""

from skipflow.widgets.gradient_flow import *  # noqa: F403
from skipflow.widgets.orderings import *  # noqa: F403

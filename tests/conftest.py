"""Hypothesis settings for the whole suite.

``make test`` (CI, and a fresh clone) runs the ``ci`` profile: examples derived from each test's
own code (``derandomize``) and no example database, so a run can neither flake on a lucky draw nor
inherit a failure a previous run saved. A failure there is a real bug and reproduces on every run.
Everywhere else (``make unit``, plain pytest) the ``dev`` profile explores new random examples
and replays the failures it found from ``.hypothesis/`` (ignored by git) until they are fixed.
Choose with ``--hypothesis-profile`` (or ``HYPOTHESIS_PROFILE``).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

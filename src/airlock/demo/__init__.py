"""``airlock demo`` and the Lumen scenario it plays (tests use the scenario too).

* :mod:`airlock.demo.lifecycle` — the narrated lifecycle (:func:`run`, :class:`Demo`);
* :mod:`airlock.demo.ship` — act 3: serving, live traffic and the three rollouts;
* :mod:`airlock.demo.narration` — what the narration says, as text from values;
* :mod:`airlock.demo.scenario` — the example releases, policy and questions;
* :mod:`airlock.demo.traffic` — simulated customers (:class:`UserTraffic`), on the
  shared open-loop load generator :mod:`airlock.services.load`.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from airlock.demo.lifecycle import Demo, DemoOptions, DemoResult, prepare, run

__all__ = ["Demo", "DemoOptions", "DemoResult", "prepare", "run"]

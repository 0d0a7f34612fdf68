"""Many files into one table (``job.batch``), locally or on a Ray cluster; ``python -m modelkit
batch`` is its command line (``cli``).

``modelkit.batch`` is both this package and the function: the package is callable, so
``modelkit.batch(inputs, model, ...)`` works whichever Python found first.
"""

from __future__ import annotations

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from modelkit.batch.job import batch

        return batch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

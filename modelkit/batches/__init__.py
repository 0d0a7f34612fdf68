"""Batches: many files into one table (``job.batch``, public as ``modelkit.batch``), locally or
on a Ray cluster; ``python -m modelkit batch`` is its command line (``cli``).

The package is named ``batches`` so that it never shadows the function ``modelkit.batch``.
"""

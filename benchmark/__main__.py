"""``python -m benchmark``: run the suite (see :mod:`benchmark.suite`)."""

from benchmark.suite import main

main()

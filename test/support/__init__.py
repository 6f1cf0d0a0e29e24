"""Helpers shared by greenmotor's tests, its conformance runners and the docs build.

``test/`` is on ``sys.path`` when pytest runs (and the runners put it there), so these are
imported as ``support.<module>``:

* :mod:`support.servers` - SecantusDB server processes on free ports (the real server);
* :mod:`support.failpoints` - ``configureFailPoint`` as a context manager;
* :mod:`support.fault_helpers` - outcome capture, command recorders, pool-state checks;
* :mod:`support.scripted_servers` - scripted wire-protocol peers, only for faults;
* :mod:`support.conformance_common` - what the PyMongo and Motor conformance runners share;
* ``support/fork_workers.py`` - a program run by ``test_fork.py``, never imported.
"""

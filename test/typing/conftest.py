"""The ``mypy`` marker: tests that run mypy (seconds each); ``-m "not mypy"`` skips them."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "mypy: runs mypy or stubtest (slow); deselect with -m 'not mypy'"
    )

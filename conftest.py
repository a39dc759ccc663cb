"""Root pytest configuration: the opt-in ``--runslow`` switch for tests marked ``@pytest.mark.slow``.

Shared by ``tests/`` and ``sim_tests/`` (their own conftest files must not redefine the option).
"""

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked @pytest.mark.slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow test: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)

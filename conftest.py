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


@pytest.fixture(scope="session")
def timing_work(request, tmp_path_factory):
    """yosys' files and the timing estimate's cache for the per-core timing budgets (tests/test_timing.py,
    sim_tests/test_dwconv.py): pytest's cache folder, reused across runs (keyed by content), else a temporary one."""
    try:
        return request.config.cache.mkdir("rtlgen-timing")
    except Exception:
        return tmp_path_factory.mktemp("rtlgen-timing")

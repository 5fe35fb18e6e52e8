"""How pytest-xdist (``make test`` runs ``pytest -n 2``) shares the tests out between its workers, and the threads a
worker may use."""

from __future__ import annotations

import pytest

# The modules whose tests share the session's smoke run (tests/workflow/conftest.py): on one worker, which makes it
# once, and handed out first, since that run is by far the longest piece of work.
SMOKE_RUN_MODULES = ("tests/workflow/test_slurm.py", "tests/workflow/test_smoke.py")
SMOKE_RUN_SCOPE = "smoke run"


def pytest_xdist_make_scheduler(config, log):
    # Imported here: a plain `pytest` run without the plugin never calls this hook.
    from xdist.scheduler import LoadScopeScheduling

    class SmokeRunFirstScheduling(LoadScopeScheduling):
        """Module by module, as ``--dist loadfile``, except that the smoke run's modules are one unit, sent first."""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SMOKE_RUN_SCOPE if module in SMOKE_RUN_MODULES else module

        def _assign_work_unit(self, node) -> None:
            if SMOKE_RUN_SCOPE in self.workqueue:
                self.workqueue.move_to_end(SMOKE_RUN_SCOPE, last=False)
            super()._assign_work_unit(node)

    return SmokeRunFirstScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def one_native_thread_per_worker():
    """Each worker fits its models with one OpenMP/BLAS thread, as the workflow's one-thread jobs do
    (simmerge.core.runtime.native_threads): beside the other worker and the smoke run, a pool per core thrashes."""
    from simmerge.core.runtime import native_threads

    with native_threads(1):
        yield

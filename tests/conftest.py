"""Fixtures shared by the test modules."""

import gc
import os
import sys

import pytest

# torch is imported where it is used: the pytest-xdist controller, which runs no test, then never imports it
# (one torch import fewer before any worker starts)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, at most 8 (each imports torch; the slowest module takes ~20 s anyway)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, 8)


def pytest_configure(config):
    """The pytest-xdist controller runs no test, yet hypothesis' plugin imports hypothesis there (~1 s on a
    2-core machine) for its end-of-run summary, which only reports on tests run in that process (statistics on
    request aside). Unregistered there unless statistics are asked for; workers keep it whole."""
    # pytest rewrites the asserts of every module in a plugin's distribution, so hypothesis' 75 modules are
    # parsed and rewritten on import, in every process and every run where PYTHONDONTWRITEBYTECODE keeps the
    # result from being cached (benchmarks/test_overheads.py times it). The tests use hypothesis as a library,
    # whose asserts need no rewriting; its pytest plugin (a module of its own) stays marked. `_must_rewrite` is
    # private to pytest: where it is gone, nothing changes.
    marked = getattr(getattr(config.pluginmanager, "rewrite_hook", None), "_must_rewrite", None)
    if isinstance(marked, set) and "hypothesis" in marked and "hypothesis" not in sys.modules:
        marked.discard("hypothesis")
        config.pluginmanager.rewrite_hook._marked_for_rewrite_cache.clear()
    controller = not os.environ.get("PYTEST_XDIST_WORKER") and config.getoption("numprocesses", None)
    wanted = config.getoption("hypothesis_show_statistics", False)
    if controller and not wanted and config.pluginmanager.has_plugin("hypothesispytest"):
        config.pluginmanager.unregister(name="hypothesispytest")


def pytest_collection_finish(session):
    """The objects the imports made live until the process ends, yet every full garbage collection walked them
    again, a few percent of a worker's time. Frozen here, collections skip them; with them the modules every
    worker imports later anyway (the first optimizer imports torch._dynamo, the first training run's curves.png
    matplotlib)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import matplotlib

        matplotlib.use("Agg")  # as monitor.plot and viz do: no display is needed or looked for
        import matplotlib.pyplot  # noqa: F401
        import torch._dynamo  # noqa: F401
    gc.freeze()


if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker per core: torch's own threads would oversubscribe them
    # and so would numpy's OpenBLAS threads (FID's covariances), which spin while they wait: set before numpy
    # loads OpenBLAS, which importing torch does
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Caches (classifiers, reference statistics) in this session's temporary folder: never the user's, and
    never another pytest-xdist worker's, which may be writing the same file at the same moment."""
    with pytest.MonkeyPatch.context() as patch:  # restores the variable (or its absence) afterwards
        patch.setenv("CLEARDIFFUSION_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def one_thread():
    """One intra-op thread for tiny tensors: OpenMP threads would only wait on each other on a shared CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Start-up of multitest: nothing heavy on import, nothing compiled that a call does not run.

Issue 13, item 5. Each check runs in a fresh interpreter (the test process has long
imported everything); the cold-cache check points ``NUMBA_CACHE_DIR`` at an empty
folder, so it sees what a first call in a fresh install compiles. Timings are not
tested here: see benchmarks/bench_startup.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import multitest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, tmp_path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, cwd=ROOT, timeout=600)
    return json.loads(out.stdout.splitlines()[-1])


def test_import_loads_neither_numba_nor_scipy(tmp_path):
    got = _run("import json, sys, multitest; "
               "print(json.dumps(sorted(m for m in ('numba', 'scipy', 'pandas') "
               "if m in sys.modules)))", tmp_path)
    assert got == []


def test_power_module_does_not_import_scipy_stats(tmp_path):
    got = _run("import json, sys, multitest._power; "
               "print(json.dumps('scipy.stats' in sys.modules))", tmp_path)
    assert got is False


UNUSED_BY_HOLM = {"window_search", "step_adjusted_sorted", "single_step_adjusted",
                  "small_adjusted", "small_sorted_decide", "count_sweep", "count_histogram",
                  "counts_threshold", "compact_counts", "presence", "unit_interval_summary"}


@pytest.mark.parametrize("N", [50, 5000])  # the small-input kernel, the passes
def test_cold_cache_holm_compiles_only_what_it_runs(tmp_path, N):
    code = f"""
import json, sys
import numpy as np
import multitest
multitest.holm(np.linspace(0.0, 1.0, {N}), 0.05)  # settles in the plain passes
from multitest import _kernels as K
compiled = sorted(name for name in dir(K)
                  if hasattr(getattr(K, name), "signatures") and getattr(K, name).signatures)
print(json.dumps({{"compiled": compiled,
                   "hommel": "multitest._hommel_kernels" in sys.modules,
                   "fdr": "multitest._fdr_kernels" in sys.modules,
                   "power": "multitest._power" in sys.modules}}))
"""
    got = _run(code, tmp_path)
    # the decision kernels (small_decide or sweep) only: not the window search, the
    # sort, the adjusted p-values, the count kernels, hommel's or the FDR's
    assert got["compiled"], "nothing compiled: the check would be vacuous"
    assert not set(got["compiled"]) & UNUSED_BY_HOLM, got["compiled"]
    assert not (got["hommel"] or got["fdr"] or got["power"])


def test_lazy_attributes_are_the_real_objects():
    from multitest._fwer import holm
    from multitest._power import segcertify_power

    assert multitest.holm is holm and multitest.segcertify_power is segcertify_power
    assert set(multitest.__all__) <= set(dir(multitest))
    for name in multitest.__all__:
        assert getattr(multitest, name) is not None

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


UNUSED_BY_HOLM = {"window_search", "step_adjusted_sorted", "step_adjusted",
                  "single_step_adjusted", "small_sorted_order", "pack_keys", "unpack_order",
                  "small_sorted_decide", "count_sweep", "count_histogram",
                  "counts_threshold", "compact_counts", "presence", "unit_interval_summary"}


@pytest.mark.parametrize("N", [50, 5000])  # the small-input kernel, the passes
def test_cold_cache_holm_compiles_only_what_it_runs(tmp_path, N):
    code = f"""
import json, sys
import numpy as np
import multitest
multitest.holm(np.linspace(0.0, 1.0, {N}), 0.05)  # settles in the plain passes
from multitest import _kernels as K, _sort_kernels as S
compiled = sorted(name for module in (K, S) for name in dir(module)
                  if getattr(getattr(module, name), "signatures", None))
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


def test_procedures_that_need_no_order_do_not_sort(tmp_path):
    """Issue 21: Šidák's and Bonferroni's adjusted p-values need no order, so neither the
    sort's kernels nor numba's merge sort is compiled for them (small path and passes)."""
    code = """
import json
import numpy as np
import multitest
for N in (50, 5000):
    p = np.linspace(0.0, 1.0, N) ** 3
    for f in (multitest.sidak, multitest.bonferroni):
        f(p, 0.05).pvalues_adjusted
    multitest.generalized_bonferroni(p, 0.05, k=3).pvalues_adjusted
from multitest import _kernels as K, _sort_kernels as S
sort_kernels = (S.small_sorted_order, S.pack_keys, S.unpack_order)
print(json.dumps({"sort": any(bool(f.signatures) for f in sort_kernels),
                  "single": bool(K.single_step_adjusted.signatures)}))
"""
    got = _run(code, tmp_path)
    assert got == {"sort": False, "single": True}


def test_lazy_attributes_are_the_real_objects():
    from multitest._fwer import holm
    from multitest._power import segcertify_power

    assert multitest.holm is holm and multitest.segcertify_power is segcertify_power
    assert set(multitest.__all__) <= set(dir(multitest))
    for name in multitest.__all__:
        assert getattr(multitest, name) is not None

"""multitest: exact binomial p-values and multiple-testing procedures, fast.

Arrays in, arrays out; no torch. Every procedure takes p-values of any shape and
returns a :class:`MultitestResult` in the caller's shape and order.

FWER (certification-grade under arbitrary dependence): :func:`bonferroni`,
:func:`holm`, :func:`lehmann_romano` (k-FWER), :func:`generalized_bonferroni`.
FWER under independence/positive dependence: :func:`sidak`, :func:`holm_sidak`,
:func:`hochberg`, :func:`hommel`. FDR (not a certificate): :func:`benjamini_hochberg`,
:func:`benjamini_yekutieli`, :func:`two_stage_benjamini_hochberg`,
:func:`benjamini_krieger_yekutieli`, :func:`gavrilov_benjamini_sarkar`. Local FDR at
the margin (not a certificate either): :func:`support_line`.

Counts: :func:`binomial_pvalues`, :func:`certify_counts` (p-values + procedure in
O(N + n)), :func:`certify_nested_counts` (a chain of nested hypotheses per component:
hierarchical certification). Power and planning: :func:`segcertify_power`,
:func:`expected_certified_fraction`, :func:`required_samples`,
:func:`clopper_pearson_lower`, :func:`certify_threshold`, :func:`bonferroni_threshold`,
:func:`guess_probability`, :func:`min_certifying_samples`.

Simultaneous lower bounds (per-component radius maps):
:func:`simultaneous_lower_bounds` (Bonferroni/Clopper-Pearson or a Holm ladder),
:func:`ladder_levels`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the real imports, for type checkers and IDEs; at run time see __getattr__
    from multitest._adapter import METHOD_ALIASES, multipletests
    from multitest._binomial import binomial_pvalue_table, binomial_pvalues
    from multitest._counts import COUNT_METHODS, CountCertificate, certify_counts
    from multitest._fdr import benjamini_hochberg, benjamini_yekutieli
    from multitest._fdr_twostage import benjamini_krieger_yekutieli, two_stage_benjamini_hochberg
    from multitest._fwer import (
        bonferroni,
        generalized_bonferroni,
        hochberg,
        holm,
        holm_sidak,
        lehmann_romano,
        sidak,
    )
    from multitest._gbs import gavrilov_benjamini_sarkar
    from multitest._hommel import hommel
    from multitest._lower import (
        LOWER_METHODS,
        LowerBounds,
        ladder_levels,
        simultaneous_lower_bounds,
    )
    from multitest._nested import NESTED_METHODS, NestedCountCertificate, certify_nested_counts
    from multitest._planning import min_certifying_samples
    from multitest._power import (
        SampleSizePlan,
        bonferroni_threshold,
        certify_threshold,
        clopper_pearson_lower,
        expected_certified_fraction,
        guess_probability,
        required_samples,
        segcertify_power,
    )
    from multitest._result import MultitestResult
    from multitest._support_line import support_line

#: public name -> private module defining it. ``import multitest`` imports none of
#: them (nor numba or scipy): each module is imported on first access of one of its
#: names (PEP 562), and each numba kernel compiles, or loads from the cache, on its
#: first call.
_SOURCES: dict[str, str] = {
    **dict.fromkeys(["METHOD_ALIASES", "multipletests"], "_adapter"),
    **dict.fromkeys(["binomial_pvalue_table", "binomial_pvalues"], "_binomial"),
    **dict.fromkeys(["COUNT_METHODS", "CountCertificate", "certify_counts"], "_counts"),
    **dict.fromkeys(["benjamini_hochberg", "benjamini_yekutieli"], "_fdr"),
    **dict.fromkeys(["benjamini_krieger_yekutieli", "two_stage_benjamini_hochberg"],
                    "_fdr_twostage"),
    **dict.fromkeys(["bonferroni", "generalized_bonferroni", "hochberg", "holm",
                     "holm_sidak", "lehmann_romano", "sidak"], "_fwer"),
    "gavrilov_benjamini_sarkar": "_gbs",
    "hommel": "_hommel",
    **dict.fromkeys(["LOWER_METHODS", "LowerBounds", "ladder_levels",
                     "simultaneous_lower_bounds"], "_lower"),
    **dict.fromkeys(["NESTED_METHODS", "NestedCountCertificate", "certify_nested_counts"],
                    "_nested"),
    "min_certifying_samples": "_planning",
    **dict.fromkeys(["SampleSizePlan", "bonferroni_threshold", "certify_threshold",
                     "clopper_pearson_lower", "expected_certified_fraction",
                     "guess_probability", "required_samples", "segcertify_power"], "_power"),
    "MultitestResult": "_result",
    "support_line": "_support_line",
}


def __getattr__(name: str):
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module 'multitest' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"multitest.{module}"), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "COUNT_METHODS",
    "LOWER_METHODS",
    "LowerBounds",
    "METHOD_ALIASES",
    "NESTED_METHODS",
    "CountCertificate",
    "MultitestResult",
    "NestedCountCertificate",
    "SampleSizePlan",
    "benjamini_hochberg",
    "benjamini_krieger_yekutieli",
    "benjamini_yekutieli",
    "binomial_pvalue_table",
    "binomial_pvalues",
    "bonferroni",
    "bonferroni_threshold",
    "certify_counts",
    "certify_nested_counts",
    "certify_threshold",
    "clopper_pearson_lower",
    "expected_certified_fraction",
    "gavrilov_benjamini_sarkar",
    "generalized_bonferroni",
    "guess_probability",
    "hochberg",
    "holm",
    "holm_sidak",
    "hommel",
    "ladder_levels",
    "lehmann_romano",
    "min_certifying_samples",
    "multipletests",
    "required_samples",
    "segcertify_power",
    "sidak",
    "simultaneous_lower_bounds",
    "support_line",
    "two_stage_benjamini_hochberg",
]

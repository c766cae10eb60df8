"""multitest: exact binomial p-values and multiple-testing procedures, fast.

Arrays in, arrays out; no torch. Every procedure takes p-values of any shape and
returns a :class:`MultitestResult` in the caller's shape and order.

FWER (certification-grade under arbitrary dependence): :func:`bonferroni`,
:func:`holm`, :func:`lehmann_romano` (k-FWER), :func:`generalized_bonferroni`.
FWER under independence/positive dependence: :func:`sidak`, :func:`holm_sidak`,
:func:`hochberg`, :func:`hommel`. FDR (not a certificate): :func:`benjamini_hochberg`,
:func:`benjamini_yekutieli`.
"""

from multitest._adapter import METHOD_ALIASES, multipletests
from multitest._binomial import binomial_pvalue_table, binomial_pvalues
from multitest._counts import COUNT_METHODS, CountCertificate, certify_counts
from multitest._fdr import benjamini_hochberg, benjamini_yekutieli
from multitest._fwer import (
    bonferroni,
    generalized_bonferroni,
    hochberg,
    holm,
    holm_sidak,
    lehmann_romano,
    sidak,
)
from multitest._result import MultitestResult

__version__ = "0.1.0"

__all__ = [
    "COUNT_METHODS",
    "METHOD_ALIASES",
    "CountCertificate",
    "MultitestResult",
    "benjamini_hochberg",
    "benjamini_yekutieli",
    "binomial_pvalue_table",
    "binomial_pvalues",
    "bonferroni",
    "certify_counts",
    "generalized_bonferroni",
    "hochberg",
    "holm",
    "holm_sidak",
    "lehmann_romano",
    "multipletests",
    "sidak",
]

"""Words shared by every report of a certificate: soundness labels and table headers.

A certificate whose radius is not proven (a heuristic sampler such as
:class:`samplers.Rotation3D`, or a correction that does not control the FWER under
arbitrary dependence) must say so wherever it is shown: in tables, prints, figure
legends, reprs and log lines. :data:`HEURISTIC` is that phrase and
:func:`soundness_note` appends it. :data:`HEADERS` names the columns of the
Markdown tables of the CLI summary and of the demo, so the same quantity has the
same header in both. Pure Python: no torch, numpy or matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HEADERS", "HEURISTIC", "HEURISTIC_FOOTNOTE", "is_unsound", "soundness_note"]

#: Shown next to every certificate that is not a proven statement.
HEURISTIC = "heuristic, not proven"

#: One line under a table that holds heuristic rows.
HEURISTIC_FOOTNOTE = (
    f"Rows marked \"{HEURISTIC}\" are not certificates: their radius is not a proven "
    "bound (a heuristic sampler such as rotation-3d, or a correction without FWER "
    "control under arbitrary dependence)."
)

#: Markdown headers of the quantities that the CLI summary and the demo tables share.
HEADERS: dict[str, str] = {
    "sigma": "σ", "tau": "τ", "n": "n", "n0": "n0", "radius": "R",
    "correction": "correction", "num_inputs": "inputs", "accuracy": "acc.",
    "miou": "mIoU", "miou_dataset": "mIoU (data set)", "abstain": "% abstain",
    "time": "t / input (s)",
}  # fmt: skip


def is_unsound(sound: Any) -> bool:
    """Whether a ``sound`` value (bool, or its CSV text) marks a heuristic certificate.

    ``None`` and ``""`` (a row without a certificate, e.g. the base model) are not
    heuristic.

    Examples
    --------
    >>> [is_unsound(v) for v in (True, False, "True", "False", "false", None, "")]
    [False, True, False, True, True, False, False]
    """
    if sound is None or sound == "":
        return False
    if isinstance(sound, str):
        return sound.strip().lower() in ("false", "0", "no")
    return not bool(sound)


def soundness_note(text: str, sound: Any) -> str:
    """``text``, followed by ``" (heuristic, not proven)"`` if ``sound`` says so.

    Examples
    --------
    >>> soundness_note("SegCertify", False)
    'SegCertify (heuristic, not proven)'
    >>> soundness_note("SegCertify", True)
    'SegCertify'
    """
    return f"{text} ({HEURISTIC})" if is_unsound(sound) else text

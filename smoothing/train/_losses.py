"""Training losses for smoothing: noise augmentation and consistency regularization."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["consistency_loss", "noise_loss"]


def noise_loss(logits: torch.Tensor, target: torch.Tensor, *,
               ignore_index: int = 255) -> torch.Tensor:
    """Mean cross-entropy over the labelled components of noisy inputs (Cohen et al.).

    Parameters
    ----------
    logits : torch.Tensor
        (B, C, *S) scores of the perturbed inputs, classes in dimension 1.
    target : torch.Tensor
        int64 (B, *S): a class index, or ``ignore_index`` for an unlabelled component.
    ignore_index : int, default 255
        Label value left out of the loss.

    Returns
    -------
    torch.Tensor
        0-d: the mean over labelled components; 0 (with a gradient of 0) when a batch
        has none, where :func:`torch.nn.functional.cross_entropy` would return NaN.

    Examples
    --------
    >>> import torch
    >>> logits = torch.tensor([[[0.0, 0.0]], [[0.0, 50.0]]]).permute(1, 0, 2)  # (1, 2, 2)
    >>> noise_loss(logits, torch.tensor([[1, 255]]))          # the 255 pixel is left out
    tensor(0.6931)
    """
    labelled = target != ignore_index
    if not bool(labelled.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


def consistency_loss(logits: torch.Tensor, target: torch.Tensor, m: int, *, lam: float,
                     eta: float, ignore_index: int = 255) -> torch.Tensor:
    r"""Consistency regularization of Jeong & Shin [1]_, per component.

    The batch holds ``m`` noisy copies of every input, copy-major: rows
    ``j * B .. (j + 1) * B - 1`` are the ``j``-th copies of the ``B`` inputs. With
    :math:`p_j` the softmax of copy ``j`` and :math:`\bar p = \frac1m\sum_j p_j` at
    every component,

    .. math::

        L = \frac1m \sum_j \mathrm{CE}(p_j, y)
            + \lambda\, \frac1m \sum_j \mathrm{KL}(\bar p \,\|\, p_j)
            + \eta\, H(\bar p),

    the cross-entropy averaged over labelled components, the KL and entropy terms
    over *all* components (they need no label). ``m = 1``, ``lam = eta = 0`` is
    plain noise augmentation.

    Parameters
    ----------
    logits : torch.Tensor
        (m B, C, *S) scores, classes in dimension 1.
    target : torch.Tensor
        int64 (B, *S) labels of the ``B`` inputs (``ignore_index`` = unlabelled).
    m : int
        Number of noisy copies of every input (>= 1).
    lam, eta : float
        Weights of the KL and entropy terms. Jeong & Shin use ``m = 2``,
        ``eta = 0.5`` and ``lam`` in {5, 10, 20} (10 in their code's defaults).
    ignore_index : int, default 255
        Label value left out of the cross-entropy.

    Returns
    -------
    torch.Tensor
        0-d loss.

    Raises
    ------
    ValueError
        If the batch is not ``m`` times the target's.

    References
    ----------
    .. [1] J. Jeong, J. Shin, "Consistency Regularization for Certified Robustness of
       Smoothed Classifiers", NeurIPS 2020.

    Examples
    --------
    Two copies that agree have no KL term; the loss is then cross-entropy plus
    ``eta`` times the entropy:

    >>> import torch
    >>> logits = torch.zeros(2, 2, 1)                 # m = 2 copies of B = 1, 2 classes
    >>> y = torch.tensor([[0]])
    >>> round(float(consistency_loss(logits, y, 2, lam=10.0, eta=0.5)), 4)  # 1.5 log 2
    1.0397
    """
    b = target.shape[0]
    if logits.shape[0] != m * b:
        raise ValueError(f"the batch of {logits.shape[0]} logits is not m = {m} copies of "
                         f"the {b} targets.")
    ce = noise_loss(logits, target.repeat(m, *([1] * (target.ndim - 1))),
                    ignore_index=ignore_index)
    log_p = F.log_softmax(logits.float(), dim=1).unflatten(0, (m, b))  # (m, B, C, *S)
    p_bar = log_p.exp().mean(dim=0)  # (B, C, *S)
    log_p_bar = torch.log(p_bar.clamp_min(1e-20))
    kl = (p_bar * (log_p_bar - log_p)).sum(dim=2).mean()  # mean over copies and components
    entropy = -(p_bar * log_p_bar).sum(dim=1).mean()
    return ce + lam * kl + eta * entropy

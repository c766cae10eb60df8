"""Train a segmentation model for randomized smoothing: noise and consistency training.

A smoothed classifier certifies what its base model predicts *under the noise*, so a
model trained on clean inputs certifies little. :func:`train_for_smoothing` trains or
fine-tunes any torch segmentation model under the noise of a :class:`samplers.Sampler`
(the object certification uses) with Gaussian/Laplace noise augmentation (Cohen et
al., 2019) or consistency regularization (Jeong & Shin, 2020), in a resumable,
seeded loop whose checkpoints ``certify --checkpoint`` loads. See ``docs/training.md``.
"""

from smoothing.train._checkpoint import (
    STATE_FORMAT,
    WEIGHTS_FORMAT,
    checkpoint_metadata,
    data_fingerprint,
    read_state,
    save_weights,
)
from smoothing.train._loop import (
    METHODS,
    TrainRecipe,
    TrainResult,
    TrainStateMismatchError,
    resolve_device,
    train_for_smoothing,
)
from smoothing.train._losses import consistency_loss, noise_loss

__all__ = [
    "METHODS",
    "STATE_FORMAT",
    "WEIGHTS_FORMAT",
    "TrainRecipe",
    "TrainResult",
    "TrainStateMismatchError",
    "checkpoint_metadata",
    "consistency_loss",
    "data_fingerprint",
    "noise_loss",
    "read_state",
    "resolve_device",
    "save_weights",
    "train_for_smoothing",
]

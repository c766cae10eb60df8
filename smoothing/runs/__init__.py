"""Certification runs over a data set: options, the engine, the store and summaries.

The application layer between the certification core (:mod:`smoothing`) and the
command line (:mod:`smoothing.cli`):

* :mod:`~smoothing.runs.config` -- :class:`RunConfig`, the grid, the noise seeds;
* :mod:`~smoothing.runs.loading` -- device, model, data set and samplers of a run;
* :mod:`~smoothing.runs.engine` -- :func:`prepare`, :class:`CertificationRun`,
  :func:`run_certification`;
* :mod:`~smoothing.runs.store` -- the only reader and writer of a run folder;
* :mod:`~smoothing.runs.summary` -- :func:`summarize`, :func:`write_summary`;
* :mod:`~smoothing.runs.shards` -- sharded data sets under torchrun;
* :mod:`~smoothing.runs.training` -- :func:`prepare_training`: train a model from the
  model and data options of a run (``segcertify train``).

See ``docs/architecture.md`` for the layers and the walk of one ``segcertify
certify`` call.
"""

from smoothing.runs.config import (
    DATASETS,
    MAX_BATCH_SIZE,
    MAX_IMAGE_PIXELS,
    MAX_INDEX,
    MAX_K,
    MAX_NUM_POINTS,
    MAX_SAMPLES,
    MAX_SEED,
    SAMPLERS,
    GridPoint,
    ImpossibleGridPointWarning,
    RunConfig,
    noise_seed,
    plan_grid,
)
from smoothing.runs.engine import (
    CertificationRun,
    RunReport,
    input_metrics,
    prepare,
    run_certification,
)
from smoothing.runs.loading import predict_clean
from smoothing.runs.shards import (
    completed_keys,
    merge_results,
    pending_indices,
    rank_results_path,
    shard_indices,
)
from smoothing.runs.store import (
    RunFolderWarning,
    RunStore,
    append_record,
    check_output_dir,
    read_records,
    repair_jsonl,
)
from smoothing.runs.summary import (
    SHARED_SAMPLING_NOTE,
    SUMMARY_COLUMNS,
    Summary,
    summarize,
    write_summary,
)
from smoothing.runs.training import TrainingRun, prepare_training

__all__ = [
    "DATASETS",
    "MAX_BATCH_SIZE",
    "MAX_IMAGE_PIXELS",
    "MAX_INDEX",
    "MAX_K",
    "MAX_NUM_POINTS",
    "MAX_SAMPLES",
    "MAX_SEED",
    "SAMPLERS",
    "SHARED_SAMPLING_NOTE",
    "SUMMARY_COLUMNS",
    "CertificationRun",
    "GridPoint",
    "ImpossibleGridPointWarning",
    "RunConfig",
    "RunFolderWarning",
    "RunReport",
    "RunStore",
    "Summary",
    "TrainingRun",
    "append_record",
    "check_output_dir",
    "completed_keys",
    "input_metrics",
    "merge_results",
    "noise_seed",
    "pending_indices",
    "plan_grid",
    "predict_clean",
    "prepare",
    "prepare_training",
    "rank_results_path",
    "read_records",
    "repair_jsonl",
    "run_certification",
    "shard_indices",
    "summarize",
    "write_summary",
]

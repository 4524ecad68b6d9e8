"""Every file a run or a sweep directory holds, named once: what writes it and what reads it
both use these names.

A run directory (`outputs/runs/NAME`, a sweep's `outputs/sweeps/NAME/JOB`):
    .hydra/{config,hydra,overrides}.yaml  Hydra's record of the job, secrets masked
    config.py            the exported mmseg config the Runner trained (plain mmseg reads it)
    metrics.json         the last validation's metrics, per class too (MetricsFileHook)
    iter_N.pth, last_checkpoint     mmengine's checkpoints and its pointer to the newest
                         (epoch_N.pth in an epoch-based run, schedule=epochs)
    TIMESTAMP/vis_data/scalars.json mmengine's loss and validation curves
    test/, test_metrics.json, test_metrics_tta.json    `seglab test` (its logs, its metrics)
    deploy/model.onnx, deploy/preprocess.json   `seglab deploy`'s export (out= elsewhere)
    traceback.txt        a failed job's full traceback
    tensorboard/         TensorBoard's event files (`logger=tensorboard`), every session's
    .seglab-lock         the lock its training process holds
A sweep directory (`outputs/sweeps/NAME`):
    multirun.yaml, summary.json, best.yaml (an Optuna search), optuna.db and optuna.db.lock
    (its default storage, and the lock of the worker that searches it),
    report.csv, report.md, report.png (`seglab report`),
    .seglab-mlflow.lock  held while a job finds or makes the sweep's MLflow parent run
"""

HYDRA_DIR = ".hydra"
# the files Hydra writes in a job's `hydra.output_subdir` before it starts the job
HYDRA_RECORD = ("config.yaml", "hydra.yaml", "overrides.yaml")
OVERRIDES_FILE = f"{HYDRA_DIR}/overrides.yaml"
JOB_CONFIG_FILE = f"{HYDRA_DIR}/config.yaml"
HYDRA_FILE = f"{HYDRA_DIR}/hydra.yaml"
CONFIG_FILE = "config.py"
METRICS_FILE = "metrics.json"
LAST_CHECKPOINT = "last_checkpoint"
CHECKPOINT_GLOB = "*.pth"
SCALARS_GLOB = "*/vis_data/scalars.json"
TEST_DIR = "test"
TEST_METRICS_FILE = "test_metrics.json"
TEST_METRICS_TTA_FILE = "test_metrics_tta.json"
DEPLOY_DIR = "deploy"  # `seglab deploy`'s model.onnx and preprocess.json, by default
# a failed job's full traceback, beside its log (RunDirCallback.on_job_end)
TRACEBACK_FILE = "traceback.txt"
LOCK_FILE = ".seglab-lock"
TENSORBOARD_DIR = "tensorboard"
MLFLOW_SWEEP_LOCK = ".seglab-mlflow.lock"

MULTIRUN_FILE = "multirun.yaml"
SUMMARY_FILE = "summary.json"
BEST_FILE = "best.yaml"
OPTUNA_DB = "optuna.db"
REPORT_CSV, REPORT_MD, REPORT_PNG = "report.csv", "report.md", "report.png"


def checkpoint_file(iteration: int) -> str:
    """The name mmengine's CheckpointHook gives the checkpoint of an iteration."""
    return f"iter_{iteration}.pth"

"""What every experiment tracker seglab feeds (wandb, MLflow, TensorBoard) gets from a run, made
once here so that the three log the same, equally masked, facts.

- the config: the composed Hydra config, the overrides and the project's git commit, minus every
  entry whose key looks like a credential and with every secret seglab knows of masked
  (`tracked_config`; train.tracked_run masks `${oc.env:...}` values before);
- the run's identity: an id stable for its directory (`run_id`: the same directory, resumed, is
  the same tracked run) and the group options it trained (`group_choices`);
- per-class metrics (`per_class`: `val/IoU.<class>` and `val/Acc.<class>` by class).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from seglab.masking import known_secrets, looks_secret, mask_found, mask_overrides

PER_CLASS = re.compile(r"^val/(IoU|Acc)\.(.+)$")
# the groups a tracked run is tagged with
TAGGED_GROUPS = ("experiment", "model", "dataset")


@dataclasses.dataclass(frozen=True)
class TrackedRun:
    """What the trackers a run turns on get beyond the exported config (train.tracked_run).

    `settings`: each tracker's config node by name (`wandb`, `mlflow`, `tensorboard`);
    `hydra_config`: the composed config, masked (masking.mask_env_values); `overrides`: the
    job's, masked; `choices`: the group options Hydra picked; `sweep`: the sweep's name, or
    None for a single run.
    """

    settings: dict[str, dict]
    hydra_config: dict
    overrides: list[str]
    run_dir: Path
    choices: dict
    sweep: str | None = None


def without_secrets(node: Any, found: dict[str, str] | None = None) -> Any:
    """`node` minus every mapping entry whose key looks like a credential, and with every
    secret seglab knows of (masking.known_secrets: the command's) and every URL credential
    masked in its texts."""
    if found is None:
        found = known_secrets()
    if isinstance(node, dict):
        return {k: without_secrets(v, found) for k, v in node.items() if not looks_secret(str(k))}
    if isinstance(node, list):
        return [without_secrets(v, found) for v in node]
    if isinstance(node, tuple):
        return tuple(without_secrets(v, found) for v in node)
    if isinstance(node, str):
        return mask_found(node, found)
    return node


def git_commit(cwd: str | os.PathLike = ".") -> str | None:
    """The commit of the user's project (the working directory), `+dirty` if it has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def run_id(run_dir: str | os.PathLike) -> str:
    """A tracked run's id for a run (or sweep) directory: the same directory, the same run."""
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def tracked_config(hydra_config: dict, overrides: list[str]) -> dict[str, Any]:
    """What a tracker records as the run's config: `hydra_config` (already masked by
    masking.mask_env_values), the overrides and the git commit, without secrets."""
    return without_secrets(
        {
            "hydra_config": hydra_config,
            "overrides": mask_overrides(overrides),
            "git_commit": git_commit(),
        }
    )


def as_plain(node: Any) -> Any:
    """`node` as plain dicts and lists (a backend gets its arguments as mmengine's ConfigDict,
    with tuples), for YAML and JSON."""
    if isinstance(node, dict):
        return {str(k): as_plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [as_plain(v) for v in node]
    return node


def group_choices(choices: dict) -> dict[str, str]:
    """The experiment, model and data set options the run trained (those Hydra recorded)."""
    return {group: str(choices[group]) for group in TAGGED_GROUPS if choices.get(group)}


def per_class(scalars: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """class name -> {"IoU": value, "Acc": value} from a validation's scalars."""
    found: dict[str, dict[str, Any]] = {}
    for key, value in scalars.items():
        match = PER_CLASS.match(key)
        if match:
            found.setdefault(match[2], {})[match[1]] = value
    return found

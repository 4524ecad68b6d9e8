"""seglab: Hydra config groups in front of mmsegmentation 1.x and mmengine's Runner.

The package in wings, each a folder that says what it holds and what it may import:
`config/` (the Hydra tree composed and converted), `checks/` (what is checked before training),
`run/` (training with mmengine's Runner and what joins it), `zoo/` (upstream's configs as group
options). Besides them, in this folder: the commands (`cli`, `evaluate`, `report`,
`drawings`), which may import every wing, and the ground every wing may import (`errors`,
`masking`, `overrides`, `tree`, `checkpoint_loading`, `run_dirs/`), which imports no wing.
"""

from pathlib import Path

__version__ = "0.1.0"

# the repository this package runs from: the Hydra groups and the experiments beside it
REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"
EXPERIMENTS_DIR = REPO / "experiments"  # conf/experiment links to it

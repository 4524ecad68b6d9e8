"""The checks wing: everything seglab checks before a minute of training is spent.

The converted config against mmengine's registries, the machine and its launcher
(before_training, requirements, environment), the command line's swept keys and launcher
before Hydra starts (command_line; group options and keys are refused as the config is composed,
seglab/config/compose.py), the training loop against its sampler, schedulers and checkpoints
(training_loop), the data files every dataloader reads
(data_files), and whether a batch fits in memory (crop_memory). Each failure is one line that
names the key, the value and what was expected.

May import: the ground on top and the config wing. Not `run/` or `zoo/`.
"""

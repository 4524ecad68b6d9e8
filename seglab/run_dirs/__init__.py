"""Where runs and sweeps write, the ground every wing stands on.

files (every file name a run or sweep directory holds, defined once), names (the directories'
names, a function of the command-line overrides), lock (which process holds a run's directory),
resume (which checkpoint a run resumes from) and callback (the Hydra callback that names and
claims the directories before Hydra creates them, and keeps a failed job's traceback).

May import: the rest of the ground (`seglab` itself, `seglab.errors`, `seglab.masking`,
`seglab.overrides`, `seglab.tree`, `seglab.checkpoint_loading`). No wing.
"""

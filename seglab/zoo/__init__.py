"""The zoo wing: upstream mmseg's configs as seglab group options and experiments.

The generator (`make zoo` = `python -m seglab.zoo.generate`) writes conf/model, conf/dataset,
conf/schedule, conf/_delete_ and experiments/ from the installed mmsegmentation; links decide
which values are uses of one shared value, config_diff writes the YAML that closes a gap, index
is what `seglab list` reads, importer is `seglab import` of a user's own config.

May import: the ground on top, the config and checks wings. Not `run/`.
"""

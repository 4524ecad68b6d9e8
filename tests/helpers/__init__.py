"""What several test modules share: seglab run in-process or as a process, small data sets,
upstream's configs, a local SLURM cluster, wandb's offline files, an MLflow server. No test
lives here."""

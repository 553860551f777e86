"""DVC stage `train@<experiment>`: train one experiment's model."""

from visionlab.stage import stage_command
from visionlab.training.train_stage import train_experiment

main = stage_command(train_experiment, "experiment")

if __name__ == "__main__":
    main()

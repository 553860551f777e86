"""DVC stage `featurize@<experiment>`: cache a frozen backbone's features for one experiment."""

from visionlab.stage import stage_command
from visionlab.training.features import featurize_experiment

main = stage_command(featurize_experiment, "experiment")

if __name__ == "__main__":
    main()

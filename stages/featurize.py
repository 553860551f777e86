"""DVC stage `featurize@<experiment>`: cache a frozen backbone's features for one experiment."""

from visionlab.stage import stage_command

# Imported once params.yaml validates: a bad param is reported before torch loads.
main = stage_command("visionlab.training.features:featurize_experiment", "experiment")

if __name__ == "__main__":
    main()

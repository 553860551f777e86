"""DVC stage `train@<experiment>`: train one experiment's model."""

from visionlab.stage import stage_command

# Imported once params.yaml validates: a bad param is reported before torch loads.
main = stage_command("visionlab.training.train_stage:train_experiment", "experiment")

if __name__ == "__main__":
    main()

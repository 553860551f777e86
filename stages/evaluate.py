"""DVC stage `evaluate@<experiment>`: evaluate one experiment on every split."""

from visionlab.stage import stage_command

# Imported once params.yaml validates: a bad param is reported before torch loads.
main = stage_command("visionlab.evaluation.evaluate_stage:evaluate_experiment", "experiment")

if __name__ == "__main__":
    main()

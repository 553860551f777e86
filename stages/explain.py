"""DVC stage `explain@<experiment>`: Grad-CAM explanations for one experiment."""

from visionlab.stage import stage_command

# Imported once params.yaml validates: a bad param is reported before torch loads.
main = stage_command("visionlab.explanations.explain_stage:explain_experiment", "experiment")

if __name__ == "__main__":
    main()

"""DVC stage `explain@<experiment>`: Grad-CAM explanations for one experiment."""

from visionlab.explanations.explain_stage import explain_experiment
from visionlab.stage import stage_command

main = stage_command(explain_experiment, "experiment")

if __name__ == "__main__":
    main()

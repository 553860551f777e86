"""DVC stage `evaluate@<experiment>`: evaluate one experiment on every split."""

from visionlab.evaluation.evaluate_stage import evaluate_experiment
from visionlab.stage import stage_command

main = stage_command(evaluate_experiment, "experiment")

if __name__ == "__main__":
    main()

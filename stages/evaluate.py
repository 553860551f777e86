"""DVC stage `evaluate@<experiment>`: evaluate one experiment on every split."""

from visionlab.stage import stage_command


def work(params, name):  # params: visionlab.params.Params
    # Imported once params.yaml and the name validate: a typo is answered before torch loads.
    from visionlab.evaluation.evaluate_stage import evaluate_experiment

    return evaluate_experiment(params, name)


main = stage_command(work, "experiment")

if __name__ == "__main__":
    main()

"""DVC stage `explain@<experiment>`: Grad-CAM explanations for one experiment."""

from visionlab.stage import stage_command


def work(params, name):  # params: visionlab.params.Params
    # Imported once params.yaml and the name validate: a typo is answered before torch loads.
    from visionlab.explanations.explain_stage import explain_experiment

    return explain_experiment(params, name)


main = stage_command(work, "experiment")

if __name__ == "__main__":
    main()

"""DVC stage `featurize@<experiment>`: cache a frozen backbone's features for one experiment."""

from visionlab.stage import stage_command


def work(params, name):  # params: visionlab.params.Params
    # Imported once params.yaml and the name validate: a typo is answered before torch loads.
    from visionlab.training.featurize_stage import featurize_experiment

    return featurize_experiment(params, name)


main = stage_command(work, "experiment")

if __name__ == "__main__":
    main()

"""DVC stage `train@<experiment>`: train one experiment's model."""

from visionlab.stage import stage_command


def work(params, name):  # params: visionlab.params.Params
    # Imported once params.yaml and the name validate: a typo is answered before torch loads.
    from visionlab.training.train_stage import train_experiment

    return train_experiment(params, name)


main = stage_command(work, "experiment")

if __name__ == "__main__":
    main()

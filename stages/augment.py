"""DVC stage `augment@<dataset>`: multiply one data set's training split offline."""

from visionlab.stage import stage_command


def work(params, name):  # params: visionlab.params.Params
    # Imported once params.yaml and the name validate: a typo is answered before torch loads.
    from visionlab.data.augment_stage import augment_dataset

    return augment_dataset(params, name)


main = stage_command(work, "dataset")

if __name__ == "__main__":
    main()

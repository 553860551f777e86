"""DVC stage `prepare@<dataset>`: clean one data set and split it into manifests."""

from visionlab.stage import stage_command


def work(params, name):  # params: visionlab.params.Params
    # Imported once params.yaml and the name validate: a typo is answered before torch loads.
    from visionlab.data.prepare_stage import prepare_dataset

    return prepare_dataset(params, name)


main = stage_command(work, "dataset")

if __name__ == "__main__":
    main()

"""DVC stage `download@<dataset>`: fetch, verify and safely extract one data set's archive."""

from visionlab.stage import stage_command


def work(params, name):  # params: visionlab.params.Params
    # Imported once params.yaml and the name validate: a typo is answered before torch loads.
    from visionlab.data.download_stage import download_dataset

    return download_dataset(params, name)


main = stage_command(work, "dataset")

if __name__ == "__main__":
    main()

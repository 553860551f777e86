"""DVC stage `survey@<dataset>`: what a folder source holds, file by file (its sha256s)."""

from visionlab.stage import stage_command


def work(params, name):  # params: visionlab.params.Params
    """Write data/folders/<dataset>.json: every file of a folder source and its sha256."""
    from visionlab.data.survey_stage import survey_folder

    return survey_folder(params, name)


main = stage_command(work, "dataset")

if __name__ == "__main__":
    main()

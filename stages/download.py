"""DVC stage `download@<dataset>`: fetch, verify and safely extract one data set's archive."""

from visionlab.data.download import download_dataset
from visionlab.stage import stage_command

main = stage_command(download_dataset, "dataset")

if __name__ == "__main__":
    main()

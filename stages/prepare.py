"""DVC stage `prepare@<dataset>`: clean one data set and split it into manifests."""

from visionlab.data.prepare import prepare_dataset
from visionlab.stage import stage_command

main = stage_command(prepare_dataset, "dataset")

if __name__ == "__main__":
    main()

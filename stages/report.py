"""DVC stage `report`: compare every experiment; register each data set's best model in MLflow."""

from visionlab.reporting.stage import main

if __name__ == "__main__":
    main()

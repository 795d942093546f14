"""Fine-tuning: training data from judgments and the catalog, typed configs, trainers."""

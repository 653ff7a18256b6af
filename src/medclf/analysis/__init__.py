"""Study-level analyses: EDA, model comparison, the augmentation study, explanations."""

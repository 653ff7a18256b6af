"""Running the study: plan which notebooks to run, execute them, record provenance."""

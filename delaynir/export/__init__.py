"""Export to NIR and the registry of executors and their file formats."""

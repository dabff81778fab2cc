"""Result files and what is made from them: replay and validation, plots and artifacts."""

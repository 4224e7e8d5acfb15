"""Release: export folder, model card, push to the Hub."""

"""Task heads and their evaluation: inspection, maintenance, energy."""

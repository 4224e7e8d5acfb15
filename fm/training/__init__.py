"""LightningModules, losses, the training CLI (launch code lives here, never in fm.model)."""

"""Offline data preparation: plant manifests + raw files -> one tokenized corpus on disk."""

"""Corpus reading, window sampling, collate, LightningDataModules."""

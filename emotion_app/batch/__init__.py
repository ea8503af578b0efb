"""Many files: batch inputs (files, folders, zips), the local batch, its tables, and the same batch on Ray Data."""

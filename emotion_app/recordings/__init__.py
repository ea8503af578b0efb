"""Long recordings and many files: segmentation, two-pass analysis, batch inputs and tables."""

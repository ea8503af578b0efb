"""Your own labels: evaluate on a labelled set, train a head on the embeddings, use it everywhere.

    dataset   DATA (label folders, CSV/JSONL, zip) -> labelled items; label maps; the size rules
    cache     utterance embeddings per file and model, on disk (computed once)
    report    WA / UA / macro F1 / confusion (scikit-learn), CSV and PNG files, folders written whole
    evaluate  a head (the model's 9-class one or yours) scored on a labelled set
    train     cross-validation (speaker-grouped when speakers are known), then a head fitted on all

The Head itself (weights, applied with numpy) is part of the model (model/head.py); the commands
are the CLI's (cli/heads.py). Importing this package loads nothing heavy; scikit-learn only when
a head is trained or scored.
"""

"""Fine-tuning emotion2vec+ on your labelled data: LoRA adapters (or unfrozen weights) on the top K
transformer blocks and a new head for your labels, trained over cached features of the frozen
lower part, written as a model folder that every entry point loads with `--model DIR`.

    data      DATA read, mapped, checked and split (heads/dataset.py reads it)
    features  the frozen lower part, run once per clip, cached on disk as fp16
    augment   speed perturbation and noise at a given SNR: copies of the training clips
    lora      LoRA adapters on linear layers, merged back into plain weights
    top       what trains: the top K blocks and the new head over the cached tokens
    loop      AdamW, warm-up and cosine, class weights, padded-second batches, checkpoints
    export    the model folder in the hub's layout and its training card
    run       fine_tune(): all of it, for the CLI (cli/finetune.py) and Python
    report    the base model, a head and the fine-tuned model scored on the same held-out clips
    job       a fine-tune in its own process (the page's job): one at a time, progress, cancel

Importing this package loads nothing heavy; torch when a fine-tune runs.
"""

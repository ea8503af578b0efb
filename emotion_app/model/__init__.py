"""The emotion2vec+ network: config, graph, checkpoint loading, hub download, random checkpoints."""

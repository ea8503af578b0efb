"""The command line: `emotion-app` / `python -m emotion_app` and its subcommands (main.py)."""

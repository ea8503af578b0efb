"""The web app: `python app.py [flags]` is `emotion-app serve [flags]` (./run.sh starts it).

A shim, so that the app starts from a checkout without installing the package; the flags, their
environment variables and the server are the CLI's (emotion_app/cli/serve.py).
"""

import sys

from emotion_app.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))

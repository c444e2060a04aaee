"""Run kerasr from a checkout without installing it: `python cli.py upscale photo.png`."""

from kerasr.cli import main

if __name__ == "__main__":
    main()

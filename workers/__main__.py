import argparse
import os
import sys

from workers.main import QUEUE_KINDS, main

parser = argparse.ArgumentParser(prog="python -m workers", description="Run agency Temporal workers.")
parser.add_argument(
    "--queue",
    action="append",
    choices=[*QUEUE_KINDS, "all"],
    required=True,
    help="task queue kind to serve (repeatable)",
)
args = parser.parse_args()
code = main(args.queue)
sys.stdout.flush()
# The SDK's core threads can keep a process alive after shutdown (sdk-python #300): exit explicitly.
os._exit(code)

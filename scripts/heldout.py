"""Prints a manifest's lines after the first --skip whose text appears in none of the --exclude manifests:
a held-out set that shares no sentence with the training data (used for the second synthetic corpus)."""

import argparse
import json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("manifest")
    p.add_argument("--skip", type=int, required=True, help="lines kept for training")
    p.add_argument("--exclude", nargs="+", default=[], help="manifests whose sentences must not appear")
    args = p.parse_args()
    seen = {json.loads(line)["text"] for path in args.exclude for line in open(path) if line.strip()}
    with open(args.manifest) as f:
        rows = f.readlines()[args.skip:]
    print("".join(r for r in rows if r.strip() and json.loads(r)["text"] not in seen), end="")


if __name__ == "__main__":
    main()

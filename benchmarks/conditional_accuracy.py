"""How well a conditional run draws the class it is asked for, read by gentk's MNIST classifier.

    python benchmarks/conditional_accuracy.py RUN [-n 1000] [--seed 0]

For each class K the run can draw, samples N images with label K (as
`gentk sample RUN --label K` does) and reports the share that the classifier
of `gentk fid --features mnist-classifier` (99.24% test accuracy) reads as K,
and the mean over classes. Prints one JSON object; meaningful for runs trained
on MNIST (the classifier knows digits only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("run", help="a run directory of a conditional model")
    parser.add_argument("-n", type=int, default=1000, help="samples per class (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling noise (default: 0)")
    args = parser.parse_args(argv)

    import torch

    import gentk
    from gentk.fid.classifier import load_classifier, prepare
    from gentk.images import to_uint8

    started = time.perf_counter()
    run = gentk.load_run(args.run)
    if not run.model.conditional:
        print(f"error: {args.run} is a {run.config.model} run, not a conditional model", file=sys.stderr)
        return 2
    classifier, weights = load_classifier()
    shares = {}
    with torch.inference_mode():
        for k in range(run.model.num_classes):
            images = to_uint8(run.sample(args.n, seed=args.seed + k, labels=k))
            predicted = torch.cat([classifier(prepare(images[i:i + 500]))[1].argmax(1)
                                   for i in range(0, args.n, 500)])
            shares[str(k)] = round(float((predicted == k).float().mean()), 4)
    print(json.dumps({"run": args.run, "model": run.config.model, "checkpoint": run.checkpoint, "step": run.step,
                      "samples_per_class": args.n, "share_read_as_label": shares,
                      "mean": round(sum(shares.values()) / len(shares), 4),
                      "classifier_sha256": weights.sha256[:16], "time_s": round(time.perf_counter() - started, 1)},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

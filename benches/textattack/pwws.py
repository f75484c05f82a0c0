"""TextAttack's own PWWS recipe (PWWSRen2019, unchanged) against a Tempered word-CNN run, on
the MR test split Tempered uses: the like-for-like reference for the `pwws` attack-cost
numbers in BENCHMARKS.md.

    NLTK_DATA=... python pwws.py RUN_DIR/checkpoints [N]

Prints TextAttack's own metrics as JSON: success rate, words perturbed, queries (as
TextAttack counts them: a text it has scored before is counted again), and wall time."""
import csv
import json
import os
import sys
import time

import numpy as np
from textattack import AttackArgs, Attacker
from textattack.attack_recipes import PWWSRen2019
from textattack.datasets import Dataset
from textattack.metrics import AttackQueries, AttackSuccessRate, WordsPerturbed
from textattack.models.wrappers import ModelWrapper

from victim import WordCnn

MR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../data/mr/mr.csv")


class Wrapper(ModelWrapper):
    def __init__(self, model):
        self.model = model

    def __call__(self, texts):
        return self.model.probs(texts)


def mr_test():
    """The split of pipelines/sentiment*.toml: the last 533 sentences of each class."""
    with open(MR, newline="") as f:
        rows = list(csv.DictReader(f))
    neg = [(r["text"], 0) for r in rows if r["label"] == "0"]
    pos = [(r["text"], 1) for r in rows if r["label"] == "1"]
    return neg[-533:] + pos[-533:]


def main():
    victim = WordCnn(sys.argv[1])
    test = mr_test()[: int(sys.argv[2])] if len(sys.argv) > 2 else mr_test()
    accuracy = float((victim.probs([t for t, _ in test]).argmax(1) == [y for _, y in test]).mean())
    attack = PWWSRen2019.build(Wrapper(victim))
    args = AttackArgs(num_examples=len(test), disable_stdout=True, silent=True, random_seed=765)
    attacker = Attacker(attack, Dataset(test, input_columns=["text"], shuffle=False), args)
    start = time.time()
    results = attacker.attack_dataset()
    seconds = time.time() - start
    words = WordsPerturbed().calculate(results)
    words.pop("num_words_changed_until_success", None)
    print(
        json.dumps(
            {
                "examples": len(test),
                "clean_accuracy": accuracy,
                "success": AttackSuccessRate().calculate(results),
                "words_perturbed": words,
                "queries": AttackQueries().calculate(results),
                "seconds": seconds,
            },
            indent=1,
            default=float,
        )
    )


if __name__ == "__main__":
    main()

"""Builds the NLTK data folder TextAttack's PWWS needs, without nltk.download (which needs
the internet): WordNet 3.0 from Debian's `wordnet-base` (the same database the text
plugin's tables come from) and the English stop-word list shipped in data/stopwords.

    python3 nltk_data.py OUT_DIR        # then export NLTK_DATA=OUT_DIR
"""
import os
import shutil
import sys

WORDNET = "/usr/share/wordnet"
HERE = os.path.dirname(os.path.abspath(__file__))
STOPWORDS = os.path.join(HERE, "../../data/stopwords/english.txt")

# WordNet's lexicographer files in their numbered order; the Debian package leaves out
# the `lexnames` file that nltk's reader opens.
LEXNAMES = """adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact
noun.attribute noun.body noun.cognition noun.communication noun.event noun.feeling noun.food
noun.group noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant
noun.possession noun.process noun.quantity noun.relation noun.shape noun.state
noun.substance noun.time verb.body verb.change verb.cognition verb.communication
verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion
verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl""".split()
SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def main():
    out = sys.argv[1]
    if not os.path.isdir(WORDNET):
        sys.exit(f"{WORDNET} missing: apt-get install --no-install-recommends wordnet-base")
    wordnet = os.path.join(out, "corpora", "wordnet")
    stopwords = os.path.join(out, "corpora", "stopwords")
    os.makedirs(wordnet, exist_ok=True)
    os.makedirs(stopwords, exist_ok=True)
    for name in os.listdir(WORDNET):
        shutil.copy(os.path.join(WORDNET, name), wordnet)
    with open(os.path.join(wordnet, "lexnames"), "w") as f:
        for i, name in enumerate(LEXNAMES):
            f.write(f"{i:02d}\t{name}\t{SYNTACTIC_CATEGORY[name.split('.')[0]]}\n")
    shutil.copy(STOPWORDS, os.path.join(stopwords, "english"))
    print(f"NLTK data in {out}: WordNet from {WORDNET}, stop words from {STOPWORDS}")


if __name__ == "__main__":
    main()

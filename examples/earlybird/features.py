"""The Earlybird light ranker's features and labels, and synthetic records of them.

Names are those of the-algorithm's `recap_earlybird/feature_config.py` (a subset:
the binary flags and the counts the light ranker reads, its ten labels and its
weight). The records are synthetic: flags drawn at random, counts from a
heavy-tailed distribution, and engagement labels from a logistic ground truth over
a few of them, so that a trained model has something real to find. Like twml's
DataRecords, a record holds only the labels that are positive: an absent label is
a negative (read as `default_label`, 0).
"""

import numpy as np

# Binary flags: present in a record's `binary` set when true.
FLAGS = [
    "ebd.has_diff_lang",
    "ebd.is_self_tweet",
    "encoded_tweet_features.from_verified_account_flag",
    "encoded_tweet_features.has_card_flag",
    "encoded_tweet_features.has_image_url_flag",
    "encoded_tweet_features.has_link_flag",
    "encoded_tweet_features.has_multiple_hashtags_or_trends_flag",
    "encoded_tweet_features.has_native_image_flag",
    "encoded_tweet_features.has_news_url_flag",
    "encoded_tweet_features.has_quote_flag",
    "encoded_tweet_features.has_trend_flag",
    "encoded_tweet_features.has_video_url_flag",
    "encoded_tweet_features.is_offensive_flag",
    "encoded_tweet_features.is_reply_flag",
    "encoded_tweet_features.is_retweet_flag",
    "extended_encoded_tweet_features.label_spam_flag",
]
# Counts and scores: continuous values, discretized by the model's HashingDiscretizer.
COUNTS = [
    "ebd.author_specific_score",
    "ebd.tweet_age_in_secs",
    "encoded_tweet_features.favorite_count",
    "encoded_tweet_features.num_hashtags",
    "encoded_tweet_features.num_mentions",
    "encoded_tweet_features.reply_count",
    "encoded_tweet_features.retweet_count",
    "encoded_tweet_features.text_score",
    "encoded_tweet_features.user_reputation",
    "extended_encoded_tweet_features.quote_count",
    "extended_encoded_tweet_features.weighted_favorite_count",
]
# The light ranker's labels, in its tensor order (index 0 is the trained target).
TARGET = "recap.engagement.is_favorited"
LABELS = [
    TARGET,
    "recap.engagement.is_clicked",
    "recap.engagement.is_replied",
    "recap.engagement.is_retweeted",
]
WEIGHT = "meta.record_weight/type=earlybird"
# What the model serves: the consumers look the score up by this name.
PREDICTION = "recap_earlybird.prediction"


def _scale(name: str) -> float:
    return {"ebd.tweet_age_in_secs": 86400.0, "encoded_tweet_features.user_reputation": 100.0,
            "encoded_tweet_features.text_score": 1.0, "ebd.author_specific_score": 1.0}.get(name, 50.0)


def synthetic_records(n: int, seed: int) -> list[dict]:
    """`n` record dicts (as bpr_ops.encode_data_record takes them)."""
    rng = np.random.default_rng(seed)
    flags = rng.random((n, len(FLAGS))) < rng.uniform(0.05, 0.5, len(FLAGS))
    counts = np.floor(rng.pareto(1.5, (n, len(COUNTS))) * [_scale(c) for c in COUNTS] / 10.0)
    # Scores are fractions, not counts.
    for j, name in enumerate(COUNTS):
        if name in ("encoded_tweet_features.text_score", "ebd.author_specific_score"):
            counts[:, j] = rng.random(n)
    # Each record carries a random subset of the counts (sparse, as in Earlybird's records).
    present = rng.random((n, len(COUNTS))) < 0.8
    fav = np.log1p(counts[:, COUNTS.index("encoded_tweet_features.favorite_count")])
    age = counts[:, COUNTS.index("ebd.tweet_age_in_secs")] / 86400.0
    logit = (-2.0 + 1.2 * flags[:, FLAGS.index("encoded_tweet_features.has_image_url_flag")]
             - 1.5 * flags[:, FLAGS.index("extended_encoded_tweet_features.label_spam_flag")]
             + 0.6 * fav * present[:, COUNTS.index("encoded_tweet_features.favorite_count")]
             - 0.8 * np.minimum(age, 3.0))
    p = 1.0 / (1.0 + np.exp(-logit))
    favorited = rng.random(n) < p
    records = []
    for i in range(n):
        labels = {TARGET: 1.0} if favorited[i] else {}
        for other in LABELS[1:]:
            if rng.random() < 0.5 * p[i]:
                labels[other] = 1.0
        records.append({
            "binary": [FLAGS[j] for j in np.flatnonzero(flags[i])],
            "continuous": {
                **{COUNTS[j]: float(counts[i, j]) for j in np.flatnonzero(present[i])},
                **labels,
                # twml's example weights: positives weigh more (example_weights.py).
                WEIGHT: 1.0 if favorited[i] else 0.5,
            },
        })
    return records

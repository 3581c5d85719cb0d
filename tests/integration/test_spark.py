"""The Spark recipe of docs/prediction.md, run as written on a local Spark session: pyspark's predict_batch_udf calling
load_classifier in Spark's Python workers gives what `predict` gives."""

import os
import sys

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # Spark's Python workers: this environment, with the package
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.mark.slow
def test_predict_batch_udf_with_load_classifier_matches_predict(spark, trained_run, small_csv, trained_classifier):
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    run = str(trained_run)

    # --- the recipe of docs/prediction.md ("On Spark") ---
    def make_predict_fn():
        from lora_sentiment import load_classifier

        classifier = load_classifier(run, precision="fp32")  # the docs', in fp32 to compare to 1e-5
        return lambda texts: classifier.predict_scores(list(texts))

    classify = predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()), batch_size=64)
    reviews = spark.read.csv(str(small_csv), header=True, multiLine=True, escape='"').where("text IS NOT NULL")
    scored = reviews.withColumn("probabilities", classify("text")).toPandas()
    # ---

    expected = pd.read_csv(small_csv)
    got = scored.set_index("id").loc[expected["id"].astype(str)]
    assert len(got) == len(expected) == 96
    np.testing.assert_allclose(
        np.stack(got["probabilities"].to_numpy()), trained_classifier.predict_scores(expected.text.tolist()), atol=1e-5
    )

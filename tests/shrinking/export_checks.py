"""Shared by the shrink tests: a model exported as a SavedModel serves, and converts to TFLite, unchanged."""

import numpy as np


def assert_export_serves_and_converts_to_tflite(model, x, expected, directory):
    import tensorflow as tf

    model.export(directory, format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(directory)  # keep it referenced: serve() reads its variables
    np.testing.assert_allclose(np.asarray(loaded.serve(tf.constant(x))), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())

    interpreter = tf.lite.Interpreter(model_content=tf.lite.TFLiteConverter.from_saved_model(directory).convert())
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    # TFLite fuses and reorders float32 arithmetic: agreement to 1e-4 of the output scale.
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())

"""Keeping Keras' traced train/test steps in line with state they captured.

A traced step (a ``tf.function`` on TensorFlow, a jitted function on JAX) captures Python-side objects
at trace time: regularizers and constraints attached to variables, and on JAX even the values of
variables the model does not track. When such state changes, the step must be traced again.
"""


def retrace(model):
    """Makes the model's next train/test/predict step retrace.

    Works both between ``fit`` calls and from a callback inside ``fit`` (the loops look the step up
    before every batch, so a fresh ``train_function`` takes effect at the next batch; a ``None`` there
    would break the running loop).
    """
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)
    for attr in ("test_function", "predict_function"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)

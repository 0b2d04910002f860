"""`sparse_keras.testing.run_layer_test` passes a sound layer and fails each kind of broken one."""

import keras
import numpy as np
import pytest
from keras import ops

from sparse_keras.testing import run_layer_test

_PACKAGE = "sparse_keras_testing_fixtures"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Scale(keras.layers.Layer):
    """A sound layer: a trainable per-feature scale times a fixed factor."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.scale * self.factor

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ForgetsFactor(Scale):
    """Broken: ``get_config`` leaves out ``factor``, so a reloaded layer computes with the default."""

    def get_config(self):
        config = super().get_config()
        del config["factor"]
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MisreportsFactor(Scale):
    """Broken: ``get_config`` always says ``factor=1.0``."""

    def get_config(self):
        return {**super().get_config(), "factor": 1.0}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SavesNoWeights(Scale):
    """Broken: a random scale that the ``.keras`` file does not keep, so a loaded model draws another."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="random_normal")

    def save_own_variables(self, store):
        del store

    def load_own_variables(self, store):
        del store


class Unregistered(Scale):
    """Broken: not registered, so ``load_model`` cannot find the class by its saved name."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WrongOutputShape(Scale):
    """Broken: ``compute_output_shape`` says one more feature than ``call`` returns."""

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CountsCalls(Scale):
    """Non-trainable state assigned in training calls: ``calls`` counts them, ``frozen`` never changes."""

    def build(self, input_shape):
        super().build(input_shape)
        self.calls = self.add_weight(name="calls", shape=(), initializer="zeros", trainable=False)
        self.frozen = self.add_weight(name="frozen", shape=(), initializer="zeros", trainable=False)

    def call(self, inputs, training=None):
        if training:
            self.calls.assign_add(1.0)
        return super().call(inputs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DivergesInTraining(Scale):
    """Broken: ``sqrt`` of a weight that starts at 0 has an infinite gradient, so one step makes it NaN."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="zeros")

    def call(self, inputs):
        return inputs * ops.sqrt(self.scale) + inputs


SHAPE = (4, 3)


def test_a_sound_layer_passes_every_check():
    run_layer_test(Scale, {"factor": 2.0}, input_shape=SHAPE, expected_output_shape=SHAPE,
                   expected_output_dtype="float32", expected_num_trainable_weights=1,
                   expected_num_non_trainable_weights=0, expected_num_losses=0, supports_masking=False)


def test_a_config_that_drops_an_argument_fails():
    with pytest.raises(AssertionError, match=r"ForgetsFactor: serialization check failed: .*\['factor'\]"):
        run_layer_test(ForgetsFactor, {"factor": 2.0}, input_shape=SHAPE)


def test_a_config_that_misreports_an_argument_fails_on_outputs():
    # The key is there, so only the outputs of the layer rebuilt from the config can tell.
    with pytest.raises(AssertionError, match="MisreportsFactor: config round trip check failed: outputs differ"):
        run_layer_test(MisreportsFactor, {"factor": 3.0}, input_shape=SHAPE)


def test_an_unregistered_layer_fails():
    with pytest.raises(AssertionError, match="Unregistered: serialization check failed: .* not registered"):
        run_layer_test(Unregistered, {}, input_shape=SHAPE)


def test_weights_lost_by_the_keras_file_fail():
    with pytest.raises(AssertionError, match="SavesNoWeights: .keras round trip check failed: weight .*scale"):
        run_layer_test(SavesNoWeights, {}, input_shape=SHAPE)


def test_a_wrong_compute_output_shape_fails():
    with pytest.raises(AssertionError, match=r"WrongOutputShape: output shape check failed: compute_output_shape"):
        run_layer_test(WrongOutputShape, {}, input_shape=SHAPE)


@pytest.mark.parametrize(
    "expectation, message",
    [
        ({"expected_output_shape": (4, 5)}, r"output shape check failed: eager output has shape \(4, 3\)"),
        ({"expected_output_dtype": "float16"}, "output dtype check failed"),
        ({"expected_num_trainable_weights": 2}, "weight count check failed: 1 trainable"),
        ({"expected_num_non_trainable_weights": 1}, "weight count check failed: 0 non-trainable"),
        ({"expected_num_losses": 1}, "losses check failed"),
        ({"supports_masking": True}, "masking check failed"),
    ],
)
def test_a_wrong_expectation_fails_naming_the_check(expectation, message):
    with pytest.raises(AssertionError, match=f"Scale: {message}"):
        run_layer_test(Scale, {}, input_shape=SHAPE, **expectation)


def test_training_that_makes_weights_non_finite_fails():
    with pytest.raises(AssertionError, match="DivergesInTraining: training check failed: .* not finite"):
        run_layer_test(DivergesInTraining, {}, input_shape=SHAPE)


def test_state_updated_in_training_calls_must_change_through_fit():
    run_layer_test(CountsCalls, {}, input_shape=SHAPE, expected_num_non_trainable_weights=2,
                   expected_updated_variables=("calls",))
    with pytest.raises(AssertionError, match="CountsCalls: training state check failed: .*frozen"):
        run_layer_test(CountsCalls, {}, input_shape=SHAPE, expected_updated_variables=("frozen",))
    with pytest.raises(ValueError, match="no non-trainable variable 'missing'"):
        run_layer_test(CountsCalls, {}, input_shape=SHAPE, expected_updated_variables=("missing",))


def test_input_data_is_used_as_given():
    data = np.arange(6, dtype="float32").reshape(2, 3)
    run_layer_test(Scale, {}, input_data=data, expected_output_shape=(2, 3), run_training_check=False)
    with pytest.raises(ValueError, match="exactly one of input_shape and input_data"):
        run_layer_test(Scale, {}, input_shape=SHAPE, input_data=data)

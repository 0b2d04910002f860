"""Pure ``keras.ops`` math shared by the whole library."""
from sparse_keras.ops import groups

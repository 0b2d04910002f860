"""Sparsity machinery that works on whole models: kernel discovery, attaching regularizers."""

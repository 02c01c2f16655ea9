"""Recurrent layers: placeholder until the RNN translation is written."""

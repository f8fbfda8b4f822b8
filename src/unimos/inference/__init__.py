"""Prediction: sliding-window inference, post-processing, writing results in the input geometry."""

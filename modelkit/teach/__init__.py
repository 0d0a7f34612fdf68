"""Teach: heads trained on a frozen model's pooled features from the user's labelled examples
(examples, fit, metrics, head, train)."""

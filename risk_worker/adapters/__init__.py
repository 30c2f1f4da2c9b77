"""Thin edges, one per technology. Adapters translate; the decision core decides."""

"""engine.visualize: seeing what a model does.

    geometry.py    convolution and pooling: where the output shape comes from (explain), what one output
                   pixel sees (footprint, plot_footprint), and how the view widens (receptive_fields)
    attention.py   attention: every head's weights for an input (attention_weights), as a table
                   (render_attention) or heat maps with the tokens on both axes (plot_attention)

matplotlib is optional: only the plot_* functions need it, and they import it when called.
"""
from .attention import attention_weights, find_attention, plot_attention, render_attention
from .geometry import Geometry, explain, footprint, plot_footprint, receptive_fields

__all__ = ["explain", "footprint", "plot_footprint", "receptive_fields", "Geometry", "attention_weights",
           "find_attention", "render_attention", "plot_attention"]

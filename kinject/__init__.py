"""kinject: teach a language model new facts from a corpus, and measure how well it worked."""

__version__ = "0.1.0"

"""tunesmith: from a team's labeled data to a fine-tuned model that is proven, registered, served and kept fresh."""

__version__ = "0.1.0"

"""orgscan: find IAM users with more than one active access key across an AWS Organization."""

__version__ = "0.1.0"

"""The one wing that talks to AWS: clients, the wire, credentials, rate limits, Organizations.

The rest of the package sees the typed seams in `orgscan.aws.interfaces`, never botocore.
"""

"""The embedded demo organization: moto's server in-process, a fault layer, and a seeded org.

Nothing here is used by a real scan; it exists so the demo and the tests exercise the real
pipeline over real HTTP without ever reaching AWS.
"""

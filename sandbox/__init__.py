"""Local stand-ins for the outside world (HaloPSA, ImmyBot), for tests, demos and benchmarks.

Nothing here is imported by the function app itself; these modules only serve loopback simulators
and the data sets they answer with.
"""

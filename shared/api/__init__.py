"""The HTTP API: request parsing, problems (RFC 9457), answers, admin routes, the OpenAPI document,
the setup check.
"""

"""Table Storage: the pooled service, repositories per table family, generation reads and writes,
the read cache.
"""

"""HTTP plumbing both vendors' clients use: retry policy, request pacing, the owned connection
pool and the one log line per outgoing call."""

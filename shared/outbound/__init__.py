"""HTTP plumbing both vendors' clients use: retry policy and request pacing."""
